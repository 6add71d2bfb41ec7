"""A candidate as a recipe, the ``reproducibility`` text, and the YAML file.

Pure: the recipe is validated through :func:`farm.recipe.parse_recipe`, so anything
written here passes ``farm recipe lint``'s schema checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from farm.infer.compare import WheelDiff
from farm.infer.index import IndexFile
from farm.infer.resolve import Pin
from farm.infer.strategies import Candidate
from farm.recipe import Recipe, parse_recipe

__all__ = ["build_command", "make_recipe", "render_yaml", "reproducibility_text"]

# Paths inside the build container (its own tmpfs), not on this host.
_PIP_WHEEL = (
    "/tmp/venv/bin/python -m pip wheel --no-index --no-deps --no-build-isolation "  # noqa: S108
    "--wheel-dir /out ."
)
_PIP_INSTALL = "/tmp/venv/bin/python -m pip install --no-index --no-deps /deps/*.whl"  # noqa: S108


def build_command(candidate: Candidate, has_deps: bool) -> str:
    """The shell script, in the shape every shipped recipe shares (recipes/README.md)."""
    lines = [
        "umask 022",
        'mkdir -p "$HOME"',
        "cp -a /src /tmp/src",
        "python3 -m venv /tmp/venv",
    ]
    if has_deps:
        lines.append(_PIP_INSTALL)
    lines.append("cd /tmp/src")
    if candidate.unset_sde:
        lines.append("# Upstream built without SOURCE_DATE_EPOCH (see reproducibility).")
        lines.append(f"env -u SOURCE_DATE_EPOCH {_PIP_WHEEL}")
    else:
        lines.append(_PIP_WHEEL)
    return "\n".join(lines) + "\n"


def make_recipe(
    *,
    name: str,
    version: str,
    sdist: IndexFile,
    wheel: IndexFile,
    image: str,
    candidate: Candidate,
    pins: Sequence[Pin],
    output: str,
    reproducibility: str | None = None,
    description: str | None = None,
) -> Recipe:
    """The recipe of one candidate (``output`` is a file name or a glob under /out)."""
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": description,
        "source": {
            "type": "pypi",
            "name": name,
            "version": version,
            "sha256": sdist.sha256,
            "filename": sdist.filename,
        },
        "image": image,
        "architectures": ["amd64"],
        "build": {
            "workdir": "/src",
            "env": {
                "TZ": candidate.tz,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "PYTHONHASHSEED": "0",
                "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
                "SOURCE_DATE_EPOCH": str(candidate.sde),
            },
            "command": build_command(candidate, bool(pins)),
            "dependencies": [
                {
                    "name": p.name,
                    "version": p.version,
                    "sha256": p.file.sha256,
                    "filename": p.file.filename,
                }
                for p in pins
            ],
        },
        "outputs": [{"path": output}],
        "limits": {"timeout": 600, "cpus": 1.0, "memory": "1GiB"},
        "quorum": 3,
        "upstream": [{"output": wheel.filename, "sha256": wheel.sha256, "url": wheel.url}],
        "reproducibility": reproducibility,
    }
    if description is None:
        del data["description"]
    return parse_recipe(data, f"inferred recipe for {name}=={version}")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def reproducibility_text(
    *,
    candidate: Candidate,
    pins: Sequence[Pin],
    upstream_sha256: str,
    cutoff: datetime,
    matched: bool,
    attempts: int,
    diff: WheelDiff | None,
    failure: str | None = None,
) -> str:
    """What was inferred, and why; for a miss, how close the best attempt came."""
    head = (
        f"Matches upstream bit for bit (sha256 {upstream_sha256})"
        if matched
        else f"Does NOT match upstream (sha256 {upstream_sha256})"
    )
    parts = [f"{head} when built as inferred by `farm recipe new` ({attempts} attempt(s))."]
    parts.extend(f"{w}." for w in candidate.why)
    others = [p for p in pins if "Generator" not in p.why]
    if others:
        listed = ", ".join(f"{p.name} {p.version}" for p in others)
        parts.append(
            f"Other build dependencies are the newest pure-Python wheels on PyPI at "
            f"upstream's upload time ({_when(cutoff)}) that satisfy the sdist's "
            f"[build-system] requires and their own requirements: {listed}."
        )
    if candidate.unset_sde:
        parts.append(
            f"The recipe's SOURCE_DATE_EPOCH ({candidate.sde}, the sdist's newest file "
            "time) serves only the rest of the build; the builder must keep the sdist "
            "members' mtimes."
        )
    if not matched:
        if diff is not None:
            parts.append(f"Closest attempt: {diff.summary()}.")
        elif failure:
            parts.append(f"The closest attempt failed: {failure}.")
    return " ".join(parts)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def render_yaml(recipe: Recipe) -> str:
    """The recipe file's text, fields in the shipped recipes' order."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    limits = recipe.limits
    data["limits"] = {
        "timeout": limits.timeout,
        "cpus": limits.cpus,
        "memory": "1GiB" if limits.memory == 2**30 else limits.memory,
    }
    build = data["build"]
    data["build"] = {
        "workdir": build["workdir"],
        "env": build["env"],
        "command": build["command"],
        "dependencies": build["dependencies"],
    }
    header = (
        f"# {recipe.name} {recipe.version}: rebuilt from the sdist on PyPI; inferred by "
        "`farm recipe new`. See recipes/README.md.\n"
    )
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body
