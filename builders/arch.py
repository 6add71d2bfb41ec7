"""Which architectures this builder host can build.

A host builds its native architecture, and every foreign one for which a QEMU user
emulator is registered with the kernel's ``binfmt_misc`` (Debian's
``qemu-user-static`` registers ``qemu-aarch64``, ``qemu-arm`` and so on). A handler
only counts when binfmt_misc as a whole is enabled, the handler is enabled, and it
carries the ``F`` (fix binary) flag: without it the kernel would look the emulator up
inside the container's root file system, where it is not.

Architectures are named as Debian names them (``amd64``, ``arm64``, ``armhf``, …),
like :data:`farm.recipe.ARCHITECTURES`.
"""

from __future__ import annotations

import platform
from pathlib import Path

from builders.errors import ArchitectureError
from farm.recipe import ARCHITECTURES

__all__ = [
    "BINFMT_DIR",
    "buildable_arches",
    "docker_platform",
    "native_arch",
    "require_arch",
]

#: Where the kernel lists registered binfmt_misc handlers.
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

#: ``platform.machine()`` → Debian architecture name.
_MACHINE_TO_DEBIAN = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "armv8l": "armhf",
    "i386": "i386",
    "i686": "i386",
    "ppc64le": "ppc64el",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

#: Debian architecture → name of the qemu-user-static binfmt handler that runs it.
_QEMU_HANDLER = {
    "amd64": "qemu-x86_64",
    "arm64": "qemu-aarch64",
    "armhf": "qemu-arm",
    "i386": "qemu-i386",
    "ppc64el": "qemu-ppc64le",
    "s390x": "qemu-s390x",
    "riscv64": "qemu-riscv64",
}

#: Debian architecture → Docker platform string.
_DOCKER_PLATFORM = {
    "amd64": "linux/amd64",
    "arm64": "linux/arm64",
    "armhf": "linux/arm/v7",
    "i386": "linux/386",
    "ppc64el": "linux/ppc64le",
    "s390x": "linux/s390x",
    "riscv64": "linux/riscv64",
}


def native_arch(machine: str | None = None) -> str:
    """The Debian name of this host's architecture (or of ``machine``, for tests).

    Raises :class:`ArchitectureError` for a machine type farm does not know.
    """
    name = platform.machine() if machine is None else machine
    try:
        return _MACHINE_TO_DEBIAN[name.lower()]
    except KeyError:
        raise ArchitectureError(
            f"unknown machine type {name!r}; farm builds {', '.join(ARCHITECTURES)}"
        ) from None


def _handler_enabled(path: Path) -> bool:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return False
    for line in lines[1:]:
        if line.startswith("flags:"):
            return "F" in line.split(":", 1)[1]
    return False


def _emulated(binfmt_dir: Path) -> set[str]:
    try:
        status = (binfmt_dir / "status").read_text(encoding="ascii").strip()
    except OSError:
        return set()  # binfmt_misc not mounted: no emulation
    if status != "enabled":
        return set()
    return {a for a, handler in _QEMU_HANDLER.items() if _handler_enabled(binfmt_dir / handler)}


def buildable_arches(binfmt_dir: Path = BINFMT_DIR, machine: str | None = None) -> tuple[str, ...]:
    """The native architecture plus every emulated one, sorted, without repeats."""
    return tuple(sorted({native_arch(machine)} | _emulated(binfmt_dir)))


def require_arch(arch: str, binfmt_dir: Path = BINFMT_DIR, machine: str | None = None) -> None:
    """Return if this host can build ``arch``, else raise :class:`ArchitectureError`.

    The message names the architectures this host can build.
    """
    can = buildable_arches(binfmt_dir, machine)
    if arch not in can:
        handler = _QEMU_HANDLER.get(arch)
        hint = f" (no enabled binfmt handler {handler})" if handler else ""
        raise ArchitectureError(
            f"this host cannot build {arch}{hint}; it can build: {', '.join(can)}"
        )


def docker_platform(arch: str) -> str:
    """Docker's platform string (``linux/arm/v7``) for a Debian architecture (``armhf``)."""
    try:
        return _DOCKER_PLATFORM[arch]
    except KeyError:
        raise ArchitectureError(
            f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}"
        ) from None
