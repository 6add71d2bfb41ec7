from __future__ import annotations

import pytest

from farm.infer.artifacts import BuildSystem, SdistFacts
from farm.infer.errors import InferError
from farm.infer.strategies import backend_of, candidates
from farm.infer.timing import Timing, TzCandidate


@pytest.mark.parametrize(
    ("generator", "family", "pin", "version"),
    [
        ("flit 3.9.0", "flit_core", "flit_core", "3.9.0"),
        ("hatchling 1.27.0", "hatchling", "hatchling", "1.27.0"),
        ("bdist_wheel (0.43.0)", "setuptools", "wheel", "0.43.0"),
        ("setuptools (75.6.0)", "setuptools", "setuptools", "75.6.0"),
        ("poetry-core 1.9.0", "poetry-core", "poetry-core", "1.9.0"),
        ("pdm-backend (2.4.3)", "pdm-backend", "pdm-backend", "2.4.3"),
    ],
)
def test_generator_lines(generator: str, family: str, pin: str, version: str) -> None:
    backend = backend_of(generator)
    assert (backend.family, backend.pin_name, backend.pin_version) == (family, pin, version)


@pytest.mark.parametrize("generator", [None, "", "maturin (1.7.4)", "poetry 1.0.7"])
def test_unknown_generators_are_named(generator: str | None) -> None:
    with pytest.raises(InferError) as caught:
        backend_of(generator)
    assert caught.value.cause == "unknown-backend"


def _sdist(requires: tuple[str, ...], backend_path: tuple[str, ...] = ()) -> SdistFacts:
    return SdistFacts(
        "demo-1.0.tar.gz",
        {"demo/__init__.py": 1_700_000_000},
        BuildSystem(requires, "x.build", backend_path, declared=True),
        has_setup_py=False,
    )


def _timing(common: int, *, fixed_2016: bool, tzs: tuple[str, ...] = ("UTC",)) -> Timing:
    return Timing(
        common_epoch=common,
        common_share=0.5,
        matched=1,
        offsets={0: 1},
        tz_candidates=tuple(TzCandidate(tz, "test") for tz in tzs),
        dist_info_fixed_2016=fixed_2016,
    )


def test_flit_without_sde_tries_each_tz_first_then_the_common_time() -> None:
    got = candidates(
        _sdist(("flit_core>=3.2,<4",)),
        backend_of("flit 3.9.0"),
        _timing(1_700_000_000, fixed_2016=True, tzs=("<+0530>-5:30", "UTC")),
    )
    assert [(c.unset_sde, c.tz) for c in got] == [
        (True, "<+0530>-5:30"),
        (True, "UTC"),
        (False, "UTC"),
    ]
    assert got[0].pins == {"flit_core": "3.9.0"}
    assert got[0].requires == ()  # the pin stands for the requirement
    assert got[0].sde == 1_700_000_000  # the sdist's newest mtime


def test_flit_with_one_stamp_sets_sde_first() -> None:
    got = candidates(
        _sdist(("flit_core",)), backend_of("flit 3.9.0"), _timing(1_600_000_000, fixed_2016=False)
    )
    assert (got[0].unset_sde, got[0].sde) == (False, 1_600_000_000)


def test_hatchlings_default_time_and_other_requirements_kept() -> None:
    got = candidates(
        _sdist(("hatchling>=1.6", "hatch-vcs")),
        backend_of("hatchling 1.12.2"),
        _timing(1_580_601_600, fixed_2016=False),
    )
    assert len(got) == 1
    assert got[0].sde == 1_580_601_600 and not got[0].unset_sde
    assert got[0].requires == ("hatch-vcs",)
    assert "2020-02-02" in " ".join(got[0].why)


def test_setuptools_from_bdist_wheel_pins_wheel_and_keeps_setuptools() -> None:
    got = candidates(
        _sdist(("setuptools>=40.8.0", "wheel")),
        backend_of("bdist_wheel (0.43.0)"),
        _timing(1_700_000_000, fixed_2016=False),
    )
    assert got[0].pins == {"wheel": "0.43.0"}
    assert got[0].requires == ("setuptools>=40.8.0",)
    assert not got[0].unset_sde and got[1].unset_sde


def test_a_backend_in_the_sdist_itself_pins_nothing() -> None:
    got = candidates(
        _sdist((), backend_path=(".",)),
        backend_of("flit 3.10.1"),
        _timing(1_700_000_000, fixed_2016=True),
    )
    assert got[0].pins == {} and got[0].requires == ()
