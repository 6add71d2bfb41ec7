"""The real world wired into recipe inference: the index, downloads, rebuilds.

Shared by ``farm recipe new`` (:mod:`farm.cli.infer_cmd`), its closures
(:mod:`farm.cli.closure_cmd`) and ``farm bench coverage``: PyPI's simple API, verified
downloads into the builder's fetch cache (``builders.fetch``) and hermetic rebuilds in
the pinned builder image (``builders.local_build``). Heavy modules are imported inside
the functions, so ``farm --help`` stays fast.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from farm.infer.engine import Inference
    from farm.infer.ports import Downloader, IndexSource, Rebuilder

__all__ = [
    "Ports",
    "Settings",
    "default_settings",
    "infer_one",
    "infer_with",
    "open_ports",
    "parse_spec",
    "recipe_path",
]

_SPEC = re.compile(r"^\s*([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*(\S+)\s*$")


def parse_spec(spec: str) -> tuple[str, str]:
    """``NAME==VERSION`` -> (name, version); InferError("bad-request") otherwise."""
    from farm.infer.errors import InferError

    m = _SPEC.match(spec)
    if not m:
        raise InferError(
            f"{spec!r}: give one release as NAME==VERSION (e.g. tomli-w==1.1.0)", "bad-request"
        )
    return m.group(1), m.group(3)


def recipe_path(out: Path, name: str, version: str) -> Path:
    """Where the recipe goes: ``OUT/NAME/VERSION.yaml``."""
    return out / name / f"{version}.yaml"


@dataclass(frozen=True)
class Settings:
    """Where inference reads from and builds in."""

    index_url: str
    cache: Path
    image: str


def default_settings(image: str | None, index_url: str | None, cache: Path | None) -> Settings:
    """The builder's own index and fetch cache; the builder image this host builds."""
    from builders.settings import BuilderSettings

    builder = BuilderSettings()
    if image is None:
        from builders.image import build_builder_image

        image = build_builder_image(log=lambda _line: None)
    return Settings(index_url or builder.pypi_url, cache or builder.cache, image)


Ports = tuple["IndexSource", "Downloader", "Rebuilder"]
"""The index, the verified downloader and the rebuilder, wired to the real world."""


@contextmanager
def open_ports(settings: Settings) -> Iterator[Ports]:
    """Real PyPI, verified downloads into the fetch cache, rebuilds in the builder image."""
    import docker
    import httpx

    from builders.fetch.cache import FetchCache
    from builders.fetch.url import UrlFetcher
    from builders.local_build import build_locally
    from farm.errors import BuildError
    from farm.infer.ports import Rebuild
    from farm.infer.pypi import SimpleIndex
    from farm.recipe import Recipe

    http = httpx.Client(timeout=httpx.Timeout(60.0, connect=20.0))
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        http.close()
        raise BuildError(f"cannot reach the Docker Engine: {exc}") from None
    urls = UrlFetcher(
        http,
        httpx.URL(settings.index_url.rstrip("/") + "/"),
        FetchCache(settings.cache),
        lambda _m: None,
        max_download=2 * 2**30,
        max_index=64 * 2**20,
    )

    def download(url: str, sha256: str, label: str, size: int | None) -> Path:
        return urls.blob(url, sha256, label, size)

    def rebuild(recipe: Recipe, work: Path) -> Rebuild:
        done = build_locally(recipe, work, fetch_cache=settings.cache, client=client)
        wheel = next(iter(done.outputs.values()), None) if done.ok else None
        digest = next(iter(done.digests.values()), None) if done.ok else None
        return Rebuild(
            ok=done.ok and wheel is not None,
            failure=done.failure,
            wheel=wheel,
            sha256=digest.removeprefix("sha256:") if digest else None,
            seconds=done.seconds,
            log_tail=done.log[-4000:].decode("utf-8", "replace"),
        )

    try:
        yield SimpleIndex(http, settings.index_url, download), download, rebuild
    finally:
        client.close()
        http.close()


def infer_with(
    ports: Ports,
    name: str,
    version: str,
    settings: Settings,
    *,
    max_attempts: int = 4,
    work_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Inference:
    """Infer one release's recipe through open ``ports`` (writes nothing)."""
    from farm.infer.engine import infer

    index, download, rebuild = ports
    work = Path(tempfile.mkdtemp(prefix="farm-infer-", dir=work_root))
    try:
        return infer(
            name,
            version,
            index=index,
            download=download,
            rebuild=rebuild,
            image=settings.image,
            work=work,
            max_attempts=max_attempts,
            progress=progress,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def infer_one(
    name: str,
    version: str,
    settings: Settings,
    *,
    max_attempts: int = 4,
    work_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Inference:
    """Infer one release's recipe with real downloads and real rebuilds (writes nothing)."""
    with open_ports(settings) as ports:
        return infer_with(
            ports,
            name,
            version,
            settings,
            max_attempts=max_attempts,
            work_root=work_root,
            progress=progress,
        )
