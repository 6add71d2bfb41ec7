"""Which architectures a host can build: native plus enabled QEMU binfmt handlers."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders.arch import buildable_arches, docker_platform, native_arch, require_arch
from builders.errors import ArchitectureError
from farm.recipe import ARCHITECTURES


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "armhf"),
        ("i686", "i386"),
        ("ppc64le", "ppc64el"),
        ("s390x", "s390x"),
        ("riscv64", "riscv64"),
    ],
)
def test_native_arch_names(machine: str, arch: str) -> None:
    assert native_arch(machine) == arch


def test_unknown_machine_is_an_error() -> None:
    with pytest.raises(ArchitectureError, match="unknown machine type 'mips'"):
        native_arch("mips")


def test_this_host_builds_its_own_arch() -> None:
    assert native_arch() in buildable_arches()


def handler(flags: str = "F", enabled: bool = True) -> str:
    return (
        f"{'enabled' if enabled else 'disabled'}\n"
        "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
        f"flags: PO{flags}\noffset 0\nmagic 7f454c46\n"
    )


def binfmt(tmp_path: Path, status: str = "enabled", **handlers: str) -> Path:
    (tmp_path / "status").write_text(status + "\n")
    (tmp_path / "register").write_text("")
    for name, text in handlers.items():
        (tmp_path / name.replace("_", "-")).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("status", "handlers", "expected"),
    [
        ("enabled", {"qemu_aarch64": handler()}, ("amd64", "arm64")),
        (
            "enabled",
            {"qemu_aarch64": handler(), "qemu_riscv64": handler()},
            ("amd64", "arm64", "riscv64"),
        ),
        ("enabled", {"qemu_aarch64": handler(enabled=False)}, ("amd64",)),
        ("enabled", {"qemu_aarch64": handler(flags="")}, ("amd64",)),  # no F: not in containers
        ("disabled", {"qemu_aarch64": handler()}, ("amd64",)),
        ("enabled", {"qemu_x86_64": handler()}, ("amd64",)),  # native counted once
        ("enabled", {"qemu_mips": handler()}, ("amd64",)),  # not a farm architecture
    ],
)
def test_buildable_arches(
    tmp_path: Path, status: str, handlers: dict[str, str], expected: tuple[str, ...]
) -> None:
    assert buildable_arches(binfmt(tmp_path, status, **handlers), machine="x86_64") == expected


def test_no_binfmt_misc_means_native_only(tmp_path: Path) -> None:
    assert buildable_arches(tmp_path / "absent", machine="aarch64") == ("arm64",)


def test_require_arch(tmp_path: Path) -> None:
    d = binfmt(tmp_path, qemu_aarch64=handler())
    require_arch("arm64", d, machine="x86_64")
    require_arch("amd64", d, machine="x86_64")
    with pytest.raises(ArchitectureError) as info:
        require_arch("s390x", d, machine="x86_64")
    message = str(info.value)
    assert "cannot build s390x" in message and "qemu-s390x" in message
    assert "it can build: amd64, arm64" in message


def test_docker_platforms() -> None:
    assert docker_platform("armhf") == "linux/arm/v7"
    assert docker_platform("ppc64el") == "linux/ppc64le"
    assert docker_platform("i386") == "linux/386"
    assert all(docker_platform(a).startswith("linux/") for a in ARCHITECTURES)
    with pytest.raises(ArchitectureError):
        docker_platform("vax")
