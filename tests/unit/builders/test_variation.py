"""A builder's variation: drawn from its id and the build id, applied under the recipe's
pins, and recorded as the build actually ran."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from builders.build import spec_for
from builders.errors import SandboxError
from builders.runner import RunOutcome, _cpu_quota, _environment
from builders.settings import BuilderSettings
from builders.variation import Variation, apply, derive, locale_env, record
from farm.keys import generate_key
from farm.recipe import load_recipe, parse_recipe
from farm.result import BuildVariation
from tests.unit.farm.conftest import BASE_RECIPE

REPO = Path(__file__).resolve().parents[3]
FLIT = load_recipe(REPO / "recipes" / "flit_core" / "3.10.1.yaml")
BUILDERS = [generate_key().keyid for _ in range(3)]
BUILDS = [f"build-{i:04d}" for i in range(200)]


def _open_recipe(**env: str) -> Any:
    """The base test recipe with exactly ``env`` (plus the TZ and SOURCE_DATE_EPOCH it must pin)."""
    base = dict(BASE_RECIPE)
    build = dict(base["build"])
    build["env"] = {"TZ": "UTC", "SOURCE_DATE_EPOCH": "0", **env}
    build["command"] = "python3 -m build --wheel --outdir /out ."
    base["build"] = build
    return parse_recipe(base)


def _outcome(**changes: Any) -> RunOutcome:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "exit_code": 0,
        "timed_out": False,
        "oom_killed": False,
        "output_exceeded": False,
        "started_at": now,
        "finished_at": now,
        "log": b"",
        "log_truncated": False,
        "log_sha256": "0" * 64,
        "output_dir": Path("/nonexistent"),
        "clock_offset_s": 0,
        "cpus": 2,
        "host_cpus": 2,
    }
    values.update(changes)
    return RunOutcome(**values)


def test_a_rerun_by_the_same_builder_is_the_same_variation() -> None:
    for builder in BUILDERS:
        for build in BUILDS[:20]:
            assert derive(builder, build) == derive(builder, build)


def test_builders_never_share_a_hostname_and_draw_every_choice() -> None:
    for build in BUILDS[:20]:
        hostnames = {derive(b, build).hostname for b in BUILDERS}
        assert hostnames == {f"b-{b[:12]}" for b in BUILDERS}
    drawn = [derive(b, build) for b in BUILDERS for build in BUILDS]
    assert {v.umask for v in drawn} == {0o022, 0o002, 0o077}
    assert {v.cpus for v in drawn} == {None, 1.0}
    assert {v.domainname for v in drawn} == {"", "farm.invalid", "build.example"}
    assert {v.lang for v in drawn} == {"C.UTF-8", "C", "POSIX"}
    assert len({v.time_offset_s for v in drawn}) == 3
    # the builders of one build usually differ in more than their hostname
    differing = [
        build
        for build in BUILDS
        if len({dataclasses.replace(derive(b, build), hostname="x") for b in BUILDERS}) > 1
    ]
    assert len(differing) > 0.9 * len(BUILDS)


def test_the_same_builder_varies_across_builds() -> None:
    assert len({derive(BUILDERS[0], build) for build in BUILDS}) > 20


@pytest.mark.parametrize("builder", ["", "B" * 64, "abc", "../" + "0" * 64])
def test_a_builder_id_that_is_not_hex_is_refused(builder: str) -> None:
    with pytest.raises(ValueError, match="not lower-case hex"):
        derive(builder, "build-1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"domainname": "Bad..Domain"}, "not a lower-case DNS name"),
        ({"lang": "C; rm -rf /"}, "not a locale name"),
    ],
)
def test_a_bad_domain_or_locale_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(derive(BUILDERS[0], "b"), **change)


@pytest.mark.parametrize(
    ("recipe_env", "lang", "expected"),
    [
        ({}, "C", {"LANG": "C"}),
        ({}, None, {}),
        ({"LANG": "C.UTF-8"}, "C", {}),
        ({"LC_ALL": "C.UTF-8"}, "POSIX", {}),
        ({"LANGUAGE": "en"}, "C", {}),
        ({"LC_CTYPE": "C.UTF-8"}, "C", {}),
        ({"PYTHONHASHSEED": "0"}, "POSIX", {"LANG": "POSIX"}),
    ],
)
def test_the_locale_is_varied_only_when_the_recipe_leaves_it_open(
    recipe_env: dict[str, str], lang: str | None, expected: dict[str, str]
) -> None:
    v = Variation(hostname="h", umask=0o022, time_offset_s=0, cpus=None, lang=lang)
    assert locale_env(v, recipe_env) == expected


def test_what_a_recipe_pins_wins_under_every_variation() -> None:
    spec = spec_for(FLIT, "amd64", Path("/src"), None, {})
    pinned = dict(FLIT.build.env)
    assert {"TZ", "SOURCE_DATE_EPOCH", "LANG", "LC_ALL"} <= set(pinned)
    for builder in BUILDERS:
        for build in BUILDS[:30]:
            varied = apply(spec, derive(builder, build))
            env = _environment(varied.env, varied.varied_env)
            assert {k: env[k] for k in pinned} == pinned
            assert varied.limits == FLIT.limits and varied.script == FLIT.build.command
            assert _cpu_quota(varied)[0] <= FLIT.limits.cpus


def test_the_runner_puts_the_variation_under_the_recipe() -> None:
    env = _environment({"LANG": "C.UTF-8", "TZ": "UTC"}, {"LANG": "C", "EXTRA": "1"})
    assert env["LANG"] == "C.UTF-8" and env["TZ"] == "UTC" and env["EXTRA"] == "1"
    assert _environment({}, {"LANG": "POSIX"})["LANG"] == "POSIX"
    assert _environment({}, {})["LANG"] == "C.UTF-8"  # the runner's default
    with pytest.raises(SandboxError, match="a variation may not"):
        _environment({}, {"HOME": "/root"})


def test_apply_sets_every_field_on_the_run() -> None:
    v = Variation(
        hostname="b-1", umask=0o077, time_offset_s=60, cpus=1.0, domainname="d.example", lang="C"
    )
    spec = apply(spec_for(_open_recipe(), "amd64", Path("/src"), None, {}), v)
    assert (spec.hostname, spec.domainname, spec.umask) == ("b-1", "d.example", 0o077)
    assert (spec.time_offset_s, spec.cpus, dict(spec.varied_env)) == (60, 1.0, {"LANG": "C"})


def test_a_shipped_recipe_records_what_it_pins_and_what_this_host_cannot_vary() -> None:
    v = Variation(
        hostname="b-0123456789ab",
        umask=0o077,
        time_offset_s=400 * 86400,
        cpus=1.0,
        domainname="farm.invalid",
        lang="C",
    )
    got = record(v, FLIT, _outcome(cpus=1, host_cpus=2))
    assert got == BuildVariation(
        hostname="b-0123456789ab",
        domainname="farm.invalid",
        umask="0077",
        cpus=1,
        lang=None,
        clock_offset_s=0,
        unvaried=(
            "locale: pinned by the recipe (LANG, LC_ALL)",
            "timezone: pinned by the recipe (TZ)",
            "umask: the recipe's command sets its own, which wins",
            "wall clock: not shifted (the image has no libfaketime)",
            "directory order: not varied (no disorderfs in the image, and FUSE needs "
            "privileges the sandbox drops)",
        ),
    )


def test_an_open_recipe_records_the_locale_and_an_applied_clock() -> None:
    v = Variation(hostname="b-1", umask=0o002, time_offset_s=3600, cpus=1.0, lang="POSIX")
    got = record(v, _open_recipe(), _outcome(cpus=1, host_cpus=1, clock_offset_s=3600))
    assert (got.lang, got.umask, got.cpus, got.clock_offset_s) == ("POSIX", "0002", 1, 3600)
    assert got.unvaried[:2] == (
        "timezone: pinned by the recipe (TZ)",
        "cpu count: this host has one CPU",
    )
    assert len(got.unvaried) == 3  # and directory order


def test_a_recipe_that_sets_the_fake_clock_itself_is_named() -> None:
    recipe = _open_recipe(FAKETIME="+0")
    v = Variation(hostname="b-1", umask=0o022, time_offset_s=3600, cpus=None)
    got = record(v, recipe, _outcome())
    assert "wall clock: not shifted (the recipe sets LD_PRELOAD or FAKETIME)" in got.unvaried


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("off", False), ("on", True), ("0", False)]
)
def test_variation_is_switched_off_per_builder(
    value: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FARM_BUILDER_VARIATION", raising=False)
    if value is not None:
        monkeypatch.setenv("FARM_BUILDER_VARIATION", value)
    assert BuilderSettings().builder_variation is expected
