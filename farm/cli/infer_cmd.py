"""``farm recipe new NAME==VERSION``: infer a recipe that rebuilds upstream's wheel.

The command wires the pure inference (:mod:`farm.infer`) to the real world: PyPI's
simple API, verified downloads into the builder's fetch cache (``builders.fetch``),
and hermetic rebuilds in the pinned builder image (``builders.local_build``). Heavy
modules are imported inside the functions, so ``farm --help`` stays fast.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from farm.infer.engine import Inference
    from farm.infer.ports import Downloader, IndexSource, Rebuilder

__all__ = ["infer_one", "new", "parse_spec", "recipe_path"]

console = Console(stderr=True)

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


@contextmanager
def _ports(settings: Settings) -> Iterator[tuple[IndexSource, Downloader, Rebuilder]]:
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
    from farm.infer.engine import infer

    say = progress or (lambda _m: None)
    work = Path(tempfile.mkdtemp(prefix="farm-infer-", dir=work_root))
    try:
        with _ports(settings) as (index, download, rebuild):
            return infer(
                name,
                version,
                index=index,
                download=download,
                rebuild=rebuild,
                image=settings.image,
                work=work,
                max_attempts=max_attempts,
                progress=say,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def new(
    spec: Annotated[str, typer.Argument(help="One release on the index, as NAME==VERSION.")],
    out: Annotated[
        Path, typer.Option("--out", help="Recipe repository to write NAME/VERSION.yaml into.")
    ] = Path("recipes"),
    accept_differs: Annotated[
        bool,
        typer.Option(
            "--accept-differs",
            help="Write the closest recipe even when no rebuild matches upstream's wheel.",
        ),
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            help="Builder image to pin, sha256:<64 hex> (default: the one this host builds)."
        ),
    ] = None,
    index_url: Annotated[
        str | None, typer.Option(help="Package index base URL (default: the builders' own).")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Fetch cache (default: the builders' own).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(min=1, max=20, help="Candidate rebuilds to try at most.")
    ] = 4,
    force: Annotated[bool, typer.Option(help="Overwrite an existing recipe file.")] = False,
) -> None:
    """Infer a recipe from PyPI that rebuilds upstream's pure-Python wheel bit for bit.

    Reads the release's sdist and wheel from the index, infers the build backend and its
    version, build dependencies as of the upload time, SOURCE_DATE_EPOCH and TZ, then
    rebuilds candidates hermetically in the builder image until one matches. Writes
    OUT/NAME/VERSION.yaml only on a match (or with --accept-differs); exits 1 otherwise.
    """
    from farm.errors import RecipeError
    from farm.infer.errors import NoMatchError
    from farm.infer.writer import render_yaml

    name, version = parse_spec(spec)
    if image is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", image):
        raise RecipeError(f"--image {image!r}: give the builder image as sha256:<64 hex>")
    target = recipe_path(out, name, version)
    if target.exists() and not force:
        raise RecipeError(f"{target} exists; pass --force to overwrite it")
    settings = default_settings(image, index_url, cache)
    with console.status(f"inferring {name}=={version}…") as status:

        def say(line: str) -> None:
            status.update(f"{name}=={version}: {line}")
            console.print(f"  {line}", highlight=False, soft_wrap=True)

        result = infer_one(name, version, settings, max_attempts=max_attempts, progress=say)
    for i, attempt in enumerate(result.attempts, 1):
        verdict = (
            "[green]matches[/]"
            if attempt.matched
            else (attempt.diff.summary() if attempt.diff else f"[red]failed[/]: {attempt.failure}")
        )
        console.print(
            f"  {i}. {attempt.candidate.label} ({attempt.seconds:.0f} s): {verdict}",
            highlight=False,
            soft_wrap=True,
        )
    if not result.matched and not accept_differs:
        raise NoMatchError(
            f"{name}=={version}: no candidate matched upstream's wheel ({result.cause}); "
            "nothing written (--accept-differs writes the closest recipe)",
            result.cause or "differs",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml(result.recipe), encoding="utf-8")
    word = "matches upstream" if result.matched else "[yellow]differs from upstream[/]"
    console.print(
        f"wrote {target}: {word} ({len(result.attempts)} attempt(s), {result.seconds:.0f} s)",
        highlight=False,
    )
