"""``farm recipe lint``: what a recipe pull request's CI runs.

Checks, for every recipe file: it is YAML with no duplicate keys, it validates
against the schema, everything it names is pinned (commit hashes, sha256 digests, an
image digest), its name and version match its path ``recipes/NAME/VERSION.yaml``,
and no (name, version) is defined twice. Each problem names the file, the field and,
where the YAML tells, the line. Linting never raises for bad input; it reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from farm.recipe import Recipe

__all__ = ["LintProblem", "find_recipe_files", "lint_paths", "lint_text"]


@dataclass(frozen=True, order=True)
class LintProblem:
    """One problem in one recipe file."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}"


# Friendlier words for the pin checks than the schema's pattern messages.
_PIN_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^source\.git\.commit$"), "must be a full 40-hex commit, not a branch or tag"),
    (re.compile(r"^image$"), "must pin the builder image by digest: sha256:<64 hex>"),
    (
        re.compile(r"^images\.[^.]+$"),
        "must pin this architecture's builder image by digest: sha256:<64 hex>",
    ),
    (re.compile(r"\.sha256$"), "must be the 64-hex sha256 of the exact file"),
)

#: What the recipe's checks across ``architectures`` and ``images`` or ``outputs`` say,
#: by field.
_ARCH_PROBLEM = re.compile(r"^Value error, ((?:images|outputs)(?:\.[^.:\s]+)*): (.*)$", re.DOTALL)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _field_name(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


def _schema_problems(path: str, root: yaml.Node | None, exc: ValidationError) -> list[LintProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Discriminated unions put the tag in the location ("source.git.commit");
        # the YAML has no such level, so look lines up without it.
        yaml_loc = tuple(
            p
            for i, p in enumerate(loc)
            if not (i > 0 and loc[i - 1] == "source" and p in ("git", "archive", "pypi"))
        )
        field = _field_name(loc)
        message = err["msg"]
        whole = _ARCH_PROBLEM.match(message) if not loc else None
        if whole:  # a check across fields, about one architecture's image or outputs
            field, message = whole.group(1), whole.group(2)
            yaml_loc = tuple(int(p) if p.isdigit() else p for p in field.split("."))
        elif err["type"] == "string_pattern_mismatch":
            for pattern, hint in _PIN_HINTS:
                if pattern.search(field):
                    message = f"{hint} (got {err['input']!r})"
                    break
        elif err["type"] == "missing" and field.endswith(".sha256"):
            message = "no hash: every source and dependency must be pinned by sha256"
        elif err["type"] == "missing" and field.endswith(".commit"):
            message = "no commit: a git source must be pinned by a full 40-hex commit"
        problems.append(LintProblem(path, _line_of(root, yaml_loc), field, message))
    return problems


def lint_text(text: str, path: str) -> tuple[Recipe | None, list[LintProblem]]:
    """Lint one recipe's text; return the recipe (when valid) and the problems found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        return None, [LintProblem(path, line, "(yaml)", f"{exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [LintProblem(path, None, "(yaml)", str(exc))]
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        return None, [LintProblem(path, 1, "(top)", f"a recipe is a mapping, this is {kind}")]
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        return None, _schema_problems(path, root, exc)
    problems: list[LintProblem] = []
    p = Path(path)
    if p.suffix != ".yaml":
        problems.append(LintProblem(path, None, "(path)", "recipe files end in .yaml"))
    if p.stem != recipe.version:
        problems.append(
            LintProblem(
                path,
                _line_of(root, ["version"]),
                "version",
                f"{recipe.version!r} does not match the file name {p.name!r}",
            )
        )
    if _normalize(p.parent.name) != _normalize(recipe.name):
        problems.append(
            LintProblem(
                path,
                _line_of(root, ["name"]),
                "name",
                f"{recipe.name!r} does not match the directory {p.parent.name!r}",
            )
        )
    for i, ref in enumerate(recipe.upstream):
        if not any(PurePosixPath(ref.output).match(o.path) for o in recipe.outputs):
            problems.append(
                LintProblem(
                    path,
                    _line_of(root, ["upstream", i, "output"]),
                    f"upstream.{i}.output",
                    f"{ref.output!r} matches no declared output",
                )
            )
    return recipe, problems


def find_recipe_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their ``*.yaml`` recipe files, sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*.yaml") if p.is_file())
        else:
            found.add(path)
    return sorted(found)


def lint_paths(paths: Iterable[Path]) -> tuple[list[Recipe], list[LintProblem]]:
    """Lint every recipe under ``paths``; also refuse two files defining one version."""
    recipes: list[Recipe] = []
    problems: list[LintProblem] = []
    seen: dict[tuple[str, str], str] = {}
    for file in find_recipe_files(paths):
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(LintProblem(str(file), None, "(file)", "no such file"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(LintProblem(str(file), None, "(file)", f"cannot read: {exc}"))
            continue
        recipe, found = lint_text(text, str(file))
        problems.extend(found)
        if recipe is None:
            continue
        key = (_normalize(recipe.name), recipe.version)
        if key in seen:
            problems.append(
                LintProblem(
                    str(file), None, "version", f"{recipe.label} is already defined in {seen[key]}"
                )
            )
        else:
            seen[key] = str(file)
            recipes.append(recipe)
    return recipes, problems
