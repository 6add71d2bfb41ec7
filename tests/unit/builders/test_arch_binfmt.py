"""builders.arch against binfmt_misc files exactly as the kernel writes them.

The texts below are copied from ``/proc/sys/fs/binfmt_misc`` on a Debian bookworm host
(kernel 6.18) after ``deploy/builder-image/enable-arm64.sh`` registered Debian's
``/usr/lib/binfmt.d/qemu-aarch64.conf`` (flags ``OPF``; the kernel lists them as
``POF``), and after the same rule was registered without ``F``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builders.arch import buildable_arches, require_arch
from builders.errors import ArchitectureError

QEMU_AARCH64_F = """\
enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""

# The same rule registered without the fix-binary flag: the kernel would open the
# interpreter inside each container's root file system, where it is not.
QEMU_AARCH64_NO_F = QEMU_AARCH64_F.replace("flags: POF", "flags: PO")

# Credentials (C) and open-binary (O) but no F: only F counts.
QEMU_AARCH64_OC = QEMU_AARCH64_F.replace("flags: POF", "flags: POC")


def kernel_dir(tmp_path: Path, **handlers: str) -> Path:
    """A binfmt_misc directory as the kernel lays it out: status, register, handlers."""
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "register").write_text("")
    for name, text in handlers.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_registered_with_f_flag_builds_arm64(tmp_path: Path) -> None:
    binfmt = kernel_dir(tmp_path, **{"qemu-aarch64": QEMU_AARCH64_F})
    assert buildable_arches(binfmt, machine="x86_64") == ("amd64", "arm64")
    require_arch("arm64", binfmt, machine="x86_64")


@pytest.mark.parametrize("text", [QEMU_AARCH64_NO_F, QEMU_AARCH64_OC])
def test_registered_without_f_flag_does_not_count(tmp_path: Path, text: str) -> None:
    binfmt = kernel_dir(tmp_path, **{"qemu-aarch64": text})
    assert buildable_arches(binfmt, machine="x86_64") == ("amd64",)
    with pytest.raises(ArchitectureError, match="no enabled binfmt handler qemu-aarch64"):
        require_arch("arm64", binfmt, machine="x86_64")


def test_disabled_handler_does_not_count(tmp_path: Path) -> None:
    text = QEMU_AARCH64_F.replace("enabled\n", "disabled\n", 1)
    binfmt = kernel_dir(tmp_path, **{"qemu-aarch64": text})
    assert buildable_arches(binfmt, machine="x86_64") == ("amd64",)


def test_other_handlers_beside_it_are_ignored(tmp_path: Path) -> None:
    python = "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n"
    binfmt = kernel_dir(tmp_path, **{"qemu-aarch64": QEMU_AARCH64_F, "python3.11": python})
    assert buildable_arches(binfmt, machine="x86_64") == ("amd64", "arm64")
