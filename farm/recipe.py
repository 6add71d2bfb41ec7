"""The recipe: what to build, from what, in what, and what comes out.

A recipe is one YAML file, ``recipes/NAME/VERSION.yaml``. Everything it names is
pinned: sources by commit or sha256, the image by digest (one per architecture in
``images``, ``image`` for the rest), build dependencies by sha256. The *recipe digest*
is the sha256 of the canonical JSON (RFC 8785) of the validated, normalized recipe
(defaults filled in, sizes in bytes, an empty ``images`` left out, so recipes written
before it existed keep their digest); every later stage names the recipe by that digest.

Invariants: a :class:`Recipe` is immutable; two files that mean the same recipe have
the same digest; a recipe that validates names nothing by a movable reference.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from farm.canonical import canonical_json, digest_str, sha256_bytes
from farm.errors import RecipeError

__all__ = [
    "ARCHITECTURES",
    "ArchiveSource",
    "BuildSpec",
    "GitSource",
    "Limits",
    "Output",
    "PypiDependency",
    "PypiSource",
    "Recipe",
    "Source",
    "UpstreamReference",
    "load_recipe",
    "parse_recipe",
    "parse_size",
]

#: Architectures a recipe may ask for, in Docker's platform naming (linux/<arch>).
ARCHITECTURES = ("amd64", "arm64", "armhf", "i386", "ppc64el", "s390x", "riscv64")

_NAME_RE = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
_VERSION_RE = r"^[A-Za-z0-9]([A-Za-z0-9.+!_-]*[A-Za-z0-9])?$"
_HEX64 = r"^[0-9a-f]{64}$"
_IMAGE_RE = r"^sha256:[0-9a-f]{64}$"
_ENV_KEY_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
#: Environment names the builder sets itself; a recipe may not override them.
RESERVED_ENV = frozenset({"HOME", "PATH", "FARM_OUT", "FARM_SRC", "FARM_DEPS"})


def parse_size(value: object) -> int:
    """Turn ``1024``, ``"512MiB"`` or ``"2GB"`` into bytes; raise ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '512MiB'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            n = int(m.group(1)) * _UNITS[(m.group(2) or "B").lower()]
            if n > 0:
                return n
    raise ValueError(f"{value!r} is not a size (write bytes, or e.g. '512MiB', '2GiB')")


Size = Annotated[int, BeforeValidator(parse_size)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class GitSource(_Frozen):
    """A git repository at one exact commit (a full 40-hex object name, never a ref)."""

    type: Literal["git"]
    url: str = Field(min_length=1, description="Clone URL (https, ssh, file or a local path).")
    commit: str = Field(
        pattern=r"^[0-9a-f]{40}$",
        description="Full 40-hex commit; branch and tag names are refused.",
    )
    subdir: str | None = Field(
        default=None, description="Directory inside the repository to build from."
    )


class ArchiveSource(_Frozen):
    """A tar or zip archive fetched by URL and checked against its sha256."""

    type: Literal["archive"]
    url: str = Field(min_length=1)
    sha256: str = Field(pattern=_HEX64)
    strip_components: int = Field(
        default=1, ge=0, description="Leading path components to drop on extraction."
    )


class PypiSource(_Frozen):
    """A source distribution published on PyPI, found by name and version, pinned by sha256."""

    type: Literal["pypi"]
    name: str = Field(pattern=_NAME_RE)
    version: str = Field(pattern=_VERSION_RE)
    sha256: str = Field(pattern=_HEX64)
    filename: str | None = Field(
        default=None, description="The sdist's file name; found by sha256 when absent."
    )


Source = Annotated[GitSource | ArchiveSource | PypiSource, Field(discriminator="type")]


class PypiDependency(_Frozen):
    """A build dependency from PyPI, fetched before the hermetic step, pinned by sha256."""

    name: str = Field(pattern=_NAME_RE)
    version: str = Field(pattern=_VERSION_RE)
    sha256: str = Field(pattern=_HEX64, description="sha256 of the exact file (wheel or sdist).")
    filename: str | None = None


class BuildSpec(_Frozen):
    """How to build: a shell script run by ``/bin/sh -eu`` in the hermetic container.

    Inside the container the source is at ``/src`` (read-only), dependencies at
    ``/deps`` (read-only), the only writable place that survives is ``/out``, and
    ``/tmp`` is scratch.
    """

    command: str = Field(min_length=1, description="Shell script, run by /bin/sh -eu.")
    workdir: str = Field(default="/src", pattern=r"^/", description="Absolute working directory.")
    env: dict[str, str] = Field(
        description="Environment; must set TZ and SOURCE_DATE_EPOCH. Nothing of the host leaks in."
    )
    dependencies: tuple[PypiDependency, ...] = Field(
        default=(), description="Pinned build dependencies, installed offline from /deps."
    )

    @field_validator("env")
    @classmethod
    def _env_ok(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not _ENV_KEY_RE.match(key):
                raise ValueError(f"environment name {key!r} must match [A-Z_][A-Z0-9_]*")
            if key in RESERVED_ENV:
                raise ValueError(f"environment name {key!r} is set by the builder")
            if not isinstance(value, str):
                raise ValueError(f"environment value of {key} must be a string")
        for required in ("TZ", "SOURCE_DATE_EPOCH"):
            if required not in env:
                raise ValueError(f"environment must set {required}")
        if not env["SOURCE_DATE_EPOCH"].isdigit():
            raise ValueError("SOURCE_DATE_EPOCH must be a whole number of seconds")
        return dict(sorted(env.items()))

    @field_validator("dependencies")
    @classmethod
    def _deps_unique(cls, deps: tuple[PypiDependency, ...]) -> tuple[PypiDependency, ...]:
        seen: set[str] = set()
        for dep in deps:
            key = dep.name.lower().replace("_", "-")
            if key in seen:
                raise ValueError(f"dependency {dep.name} is listed twice")
            seen.add(key)
        return deps


class Output(_Frozen):
    """A declared output: a path or glob relative to ``/out``, on every architecture or on
    one (a compiled wheel's name carries its platform tag, ADR 42)."""

    path: str = Field(min_length=1, description="Path or glob relative to the output directory.")
    arch: str | None = Field(
        default=None,
        description="The one architecture this output is built on (e.g. a linux_aarch64 "
        "wheel's arm64); absent: every architecture of the recipe produces it.",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"output path {path!r} must be relative and stay inside /out")
        return path


class Limits(_Frozen):
    """Resource limits of one build."""

    timeout: int = Field(default=900, ge=1, le=6 * 3600, description="Wall-clock seconds.")
    cpus: float = Field(default=2.0, gt=0, le=256)
    memory: Size = Field(default=2 * 2**30, description="Memory limit, bytes or e.g. '2GiB'.")
    pids: int = Field(default=512, ge=16, le=65536)
    output_size: Size = Field(default=512 * 2**20, description="Total size of /out.")
    log_size: Size = Field(default=4 * 2**20, description="Bytes of build log kept.")
    scratch_size: Size = Field(default=2 * 2**30, description="Size of the /tmp tmpfs.")


class UpstreamReference(_Frozen):
    """The artifact the upstream project itself published, to compare the rebuild against."""

    output: str = Field(min_length=1, description="File name of the output it corresponds to.")
    sha256: str = Field(pattern=_HEX64)
    url: str | None = None


class Recipe(_Frozen):
    """One package version's build definition."""

    name: str = Field(pattern=_NAME_RE)
    version: str = Field(pattern=_VERSION_RE)
    description: str | None = None
    source: Source
    image: str = Field(
        pattern=_IMAGE_RE,
        description="Builder image pinned by digest (the image ID), e.g. sha256:<64 hex>.",
    )
    images: dict[str, Annotated[str, Field(pattern=_IMAGE_RE)]] = Field(
        default_factory=dict,
        description="Builder image per architecture, pinned by digest (an image ID is one "
        "architecture's); an architecture not listed here is built in `image`.",
    )
    architectures: tuple[str, ...] = Field(min_length=1)
    build: BuildSpec
    outputs: tuple[Output, ...] = Field(min_length=1)
    limits: Limits = Field(default_factory=Limits)
    quorum: int = Field(default=3, ge=1, le=64)
    upstream: tuple[UpstreamReference, ...] = ()
    reproducibility: str | None = Field(
        default=None,
        description="Notes on matching upstream, and the reason where it cannot be matched.",
    )

    @field_validator("architectures")
    @classmethod
    def _arches(cls, arches: tuple[str, ...]) -> tuple[str, ...]:
        for arch in arches:
            if arch not in ARCHITECTURES:
                raise ValueError(
                    f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}"
                )
        if len(set(arches)) != len(arches):
            raise ValueError("an architecture is listed twice")
        return tuple(sorted(arches))

    @field_validator("images")
    @classmethod
    def _images_sorted(cls, images: dict[str, str]) -> dict[str, str]:
        # Sorted, so that nothing downstream depends on the order they were written in.
        return dict(sorted(images.items()))

    @model_validator(mode="after")
    def _upstream_unique(self) -> Recipe:
        names = [u.output for u in self.upstream]
        if len(set(names)) != len(names):
            raise ValueError("upstream lists one output twice")
        return self

    @model_validator(mode="after")
    def _images_per_arch(self) -> Recipe:
        for arch in self.images:
            if arch not in self.architectures:
                raise ValueError(
                    f"images.{arch}: {arch} is not one of the recipe's architectures "
                    f"({', '.join(self.architectures)})"
                )
        if self.images:
            # An image ID names one architecture's image: two architectures pinned to
            # one ID means one of them would run the other's binaries.
            seen: dict[str, str] = {}
            for arch in self.architectures:
                image = self.image_for(arch)
                if image in seen:
                    raise ValueError(
                        f"images.{arch}: {arch} and {seen[image]} both pin {image[:19]}…; "
                        "each architecture needs its own image"
                    )
                seen[image] = arch
        return self

    @model_validator(mode="after")
    def _outputs_per_arch(self) -> Recipe:
        for i, out in enumerate(self.outputs):
            if out.arch is not None and out.arch not in self.architectures:
                raise ValueError(
                    f"outputs.{i}.arch: {out.arch} is not one of the recipe's architectures "
                    f"({', '.join(self.architectures)})"
                )
        for arch in self.architectures:
            if not self.outputs_for(arch):
                raise ValueError(
                    f"outputs: none is declared for {arch}; each architecture needs at least "
                    "one (an output without arch is every architecture's)"
                )
        return self

    def outputs_for(self, arch: str) -> tuple[Output, ...]:
        """The outputs a build for ``arch`` must produce: those of no one architecture
        and those of ``arch``."""
        return tuple(o for o in self.outputs if o.arch in (None, arch))

    def upstream_for(self, arch: str) -> tuple[UpstreamReference, ...]:
        """The upstream references a build for ``arch`` is compared with: all but those
        that name only other architectures' outputs (a reference matching no output at
        all stays, so that it reads as upstream's file the build did not produce)."""
        mine = self.outputs_for(arch)
        theirs = [o for o in self.outputs if o not in mine]

        def other_arch_only(u: UpstreamReference) -> bool:
            return not any(_matches(u.output, o.path) for o in mine) and any(
                _matches(u.output, o.path) for o in theirs
            )

        return tuple(u for u in self.upstream if not other_arch_only(u))

    def image_for(self, arch: str) -> str:
        """The builder image ``arch`` is built in: its pin in ``images``, else ``image``."""
        return self.images.get(arch, self.image)

    def canonical_form(self) -> dict[str, Any]:
        """The JSON value whose canonical bytes define the recipe digest.

        An empty ``images`` and an output's absent ``arch`` are left out: recipes from
        before they existed keep their digest.
        """
        form = self.model_dump(mode="json")
        if not form["images"]:
            del form["images"]
        for out in form["outputs"]:  # likewise an output of every architecture
            if out["arch"] is None:
                del out["arch"]
        return form

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`canonical_form`."""
        return canonical_json(self.canonical_form())

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical bytes; the recipe's name everywhere downstream."""
        return digest_str(sha256_bytes(self.canonical_bytes()))

    @property
    def label(self) -> str:
        """``name==version`` for people."""
        return f"{self.name}=={self.version}"


def _matches(name: str, pattern: str) -> bool:
    """Whether the file name ``name`` is what the output path or glob ``pattern`` declares."""
    return PurePosixPath(name).match(pattern)


def parse_recipe(data: object, origin: str = "<recipe>") -> Recipe:
    """Validate a decoded recipe; raise :class:`RecipeError` naming the first problems."""
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: a recipe is a mapping, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise RecipeError(f"{origin}: {problems}") from None


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe file; raise :class:`RecipeError` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    return parse_recipe(data, str(path))
