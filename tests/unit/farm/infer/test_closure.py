"""The dependency closure walk over an in-memory index (no network)."""

from __future__ import annotations

import hashlib

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from farm.infer.closure import choose_release, marker_applies, resolve_closure
from farm.infer.index import IndexFile
from farm.requirements import parse_pinned
from tests.unit.farm.infer.fakes import FakeIndex
from tests.unit.farm.infer.helpers import file_entry


class Index(FakeIndex):
    """FakeIndex whose releases also have an sdist (unless told), counting metadata reads."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata_reads: list[str] = []

    def release(
        self,
        name: str,
        version: str,
        requires: tuple[str, ...] = (),
        *,
        sdist: bool = True,
        tag: str = "py3-none-any",
        requires_python: str | None = None,
        yanked: bool = False,
    ) -> None:
        self.add(
            name, version, "2024-01-01T00:00:00Z", requires,
            tag=tag, requires_python=requires_python,
        )  # fmt: skip
        if yanked:
            self.docs[canonicalize_name(name)][-1]["yanked"] = True
        if sdist:
            filename = f"{name.replace('-', '_')}-{version}.tar.gz"
            self.docs[canonicalize_name(name)].append(
                file_entry(
                    filename,
                    sha=hashlib.sha256(filename.encode()).hexdigest(),
                    requires_python=requires_python,
                    yanked=yanked,
                )
            )

    def metadata(self, file: IndexFile) -> str:
        self.metadata_reads.append(file.filename)
        return super().metadata(file)


def _rich() -> Index:
    idx = Index()
    idx.release(
        "rich", "13.9.4",
        ("markdown-it-py>=2.2.0", "pygments<3.0.0,>=2.13.0",
         'typing-extensions<5.0,>=4.0.0; python_version < "3.11"',
         'ipywidgets<9,>=7.5.1; extra == "jupyter"'),
    )  # fmt: skip
    idx.release("markdown-it-py", "3.0.0", ("mdurl~=0.1", 'linkify-it-py; extra == "linkify"'))
    idx.release("markdown-it-py", "4.0.0", ("mdurl~=0.1",), requires_python=">=3.12")
    idx.release("mdurl", "0.1.2")
    idx.release("mdurl", "1.0.0")  # outside ~=0.1
    idx.release("pygments", "2.18.0")
    idx.release("pygments", "2.19.1")
    idx.release("pygments", "3.0.0rc1")
    idx.release("typing-extensions", "4.12.2")
    idx.release("linkify-it-py", "2.0.3", ("uc-micro-py",))
    idx.release("uc-micro-py", "1.0.3")
    return idx


def _pins(text: str) -> list:  # type: ignore[type-arg]
    return parse_pinned(text, "requirements.txt")


def test_the_closure_of_an_application_for_the_builder_image() -> None:
    closure = resolve_closure(_pins("rich==13.9.4\n"), _rich())
    got = {p.name: (p.version, p.status) for p in closure.packages}
    # typing-extensions only for Python < 3.11 and the jupyter extra are left out;
    # markdown-it-py 4.0.0 needs Python 3.12, pygments 3.0.0rc1 is a pre-release and
    # outside <3.0.0, mdurl 1.0.0 is outside ~=0.1.
    assert got == {
        "rich": ("13.9.4", "chosen"),
        "markdown-it-py": ("3.0.0", "chosen"),
        "pygments": ("2.19.1", "chosen"),
        "mdurl": ("0.1.2", "chosen"),
    }
    assert [p.name for p in closure.packages] == ["rich", "markdown-it-py", "pygments", "mdurl"]
    rich, mdit, _, mdurl = closure.packages
    assert rich.pinned and rich.required_by == ("requirements.txt:1",)
    assert mdurl.required_by == ("markdown-it-py==3.0.0",)
    assert mdit.sdist is not None and mdit.sdist.filename == "markdown_it_py-3.0.0.tar.gz"
    assert mdit.wheel is not None and mdit.wheel.filename.endswith("-py3-none-any.whl")
    assert "satisfying >=2.2.0 (rich==13.9.4)" in mdit.why


def test_an_extra_brings_in_its_dependencies() -> None:
    closure = resolve_closure(_pins("rich==13.9.4\nmarkdown-it-py[linkify]==3.0.0\n"), _rich())
    names = [p.name for p in closure.packages]
    assert names[:2] == ["rich", "markdown-it-py"]
    assert {"linkify-it-py", "uc-micro-py", "mdurl", "pygments"} <= set(names)


def test_only_platform_wheels_is_skipped_with_its_cause_and_the_walk_goes_on() -> None:
    idx = _rich()
    idx.release("native", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    idx.release("app", "1.0", ("native>=1", "mdurl"))
    closure = resolve_closure(_pins("app==1.0"), idx)
    native = next(p for p in closure.packages if p.name == "native")
    assert (native.status, native.cause, native.version) == ("skipped", "not-pure", "2.0")
    assert "not pure Python, skipped" in native.why
    assert "native-2.0-cp311-cp311-manylinux_2_17_x86_64.whl" in native.why
    assert next(p for p in closure.packages if p.name == "mdurl").status == "chosen"
    # A skipped release's own dependencies are not read.
    assert not any(r.startswith("native") for r in idx.metadata_reads)


def test_an_older_release_with_an_sdist_and_a_pure_wheel_is_chosen() -> None:
    idx = Index()
    idx.release("lib", "1.0")
    idx.release("lib", "2.0", sdist=False)  # newest, but nothing to rebuild from
    idx.release("lib", "3.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    idx.release("lib", "4.0", yanked=True)
    idx.release("lib", "5.0b1")
    idx.release("app", "1.0", ("lib",))
    lib = resolve_closure(_pins("app==1.0"), idx).packages[1]
    assert (lib.name, lib.version, lib.status) == ("lib", "1.0", "chosen")


@pytest.mark.parametrize(
    ("sdist", "tag", "cause"),
    [
        (False, "py3-none-any", "no-sdist"),
        (True, "cp311-cp311-manylinux_2_17_x86_64", "not-pure"),
    ],
)
def test_a_pinned_release_the_farm_cannot_rebuild_is_skipped(
    sdist: bool, tag: str, cause: str
) -> None:
    idx = Index()
    idx.release("lib", "1.0", sdist=sdist, tag=tag)
    (lib,) = resolve_closure(_pins("lib==1.0"), idx).packages
    assert (lib.status, lib.cause, lib.version) == ("skipped", cause, "1.0")


def test_a_release_with_no_wheel_at_all_is_skipped() -> None:
    idx = Index()
    idx.release("lib", "1.0")
    idx.docs["lib"] = [e for e in idx.docs["lib"] if str(e["filename"]).endswith(".tar.gz")]
    (lib,) = resolve_closure(_pins("lib==1.0"), idx).packages
    assert (lib.status, lib.cause) == ("skipped", "no-wheel")


def test_a_later_specifier_revises_an_earlier_choice() -> None:
    idx = Index()
    idx.release("a", "1.0", ("shared",))
    idx.release("b", "1.0", ("shared<2",))
    idx.release("shared", "1.5", ("old-helper",))
    idx.release("shared", "2.0", ("new-helper",))
    idx.release("old-helper", "1.0")
    idx.release("new-helper", "1.0")
    closure = resolve_closure(_pins("a==1.0\nb==1.0"), idx)
    shared = next(p for p in closure.packages if p.name == "shared")
    # Greedy would keep 2.0 (met first, from a); every specifier is satisfied instead,
    # and the closure holds the dependencies of 1.5, not those of 2.0.
    assert (shared.version, shared.status) == ("1.5", "chosen")
    assert set(shared.required_by) == {"a==1.0", "b==1.0"}
    assert [p.name for p in closure.packages] == ["a", "b", "shared", "old-helper"]


def test_a_pin_a_dependency_excludes_is_a_conflict_not_replaced() -> None:
    idx = _rich()
    closure = resolve_closure(_pins("rich==13.9.4\npygments==3.0.0rc1"), idx)
    pygments = next(p for p in closure.packages if p.name == "pygments")
    assert (pygments.status, pygments.cause, pygments.version) == ("failed", "conflict", "3.0.0rc1")
    assert "<3.0.0,>=2.13.0 (rich==13.9.4)" in pygments.why


def test_nothing_satisfies_every_specifier() -> None:
    idx = Index()
    idx.release("a", "1.0", ("shared>=2",))
    idx.release("b", "1.0", ("shared<2",))
    idx.release("shared", "1.5")
    idx.release("shared", "2.0")
    shared = next(
        p for p in resolve_closure(_pins("a==1.0\nb==1.0"), idx).packages if p.name == "shared"
    )
    assert (shared.status, shared.cause) == ("failed", "resolve")
    assert ">=2 (a==1.0)" in shared.why and "<2 (b==1.0)" in shared.why


def test_unknown_projects_and_releases_are_named_failures() -> None:
    idx = Index()
    idx.release("app", "1.0", ("ghost>=1",))
    closure = resolve_closure(_pins("app==1.0\napp2==9.9"), idx)
    got = {p.name: (p.status, p.cause) for p in closure.packages}
    assert got == {
        "app": ("chosen", None),
        "app2": ("failed", "not-found"),
        "ghost": ("failed", "not-found"),
    }
    idx.release("app2", "1.0")
    (_, app2, _) = resolve_closure(_pins("app==1.0\napp2==9.9"), idx).packages
    assert (app2.status, app2.cause) == ("failed", "not-found")
    assert "app2==9.9 is not on the index" in app2.why


def test_pins_whose_marker_does_not_hold_in_the_image_are_left_out() -> None:
    idx = _rich()
    closure = resolve_closure(
        _pins('mdurl==0.1.2\ntyping-extensions==4.12.2; python_version < "3.11"'), idx
    )
    assert [p.name for p in closure.packages] == ["mdurl"]


@pytest.mark.parametrize(
    ("marker", "extra", "holds"),
    [
        ('python_version < "3.11"', "", False),
        ('python_version >= "3.11"', "", True),
        ('sys_platform == "win32"', "", False),
        ('platform_machine == "x86_64" and os_name == "posix"', "", True),
        ('implementation_name == "pypy"', "", False),
        ('extra == "cli"', "", False),
        ('extra == "cli"', "cli", True),
    ],
)
def test_markers_are_evaluated_for_the_builder_image(marker: str, extra: str, holds: bool) -> None:
    assert marker_applies(Marker(marker), extra=extra) is holds


def test_choose_release_wants_every_specifier() -> None:
    idx = _rich()
    project = idx.project("pygments")
    chosen = choose_release(project, [(SpecifierSet(">=2"), "x"), (SpecifierSet("<2.19"), "y")])
    assert (chosen.version, chosen.status) == ("2.18.0", "chosen")
    pre = choose_release(project, [(SpecifierSet(">=3.0.0rc1"), "z")])
    assert pre.version == "3.0.0rc1"
