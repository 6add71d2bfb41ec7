"""Cross-architecture agreement of pure wheels."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farm.cross_arch import compare_arches, is_pure, require_cross_arch
from farm.errors import QuorumError
from farm.recipe import load_recipe

PURE = "flit_core-3.10.1-py3-none-any.whl"
NATIVE_AMD = "markupsafe-3.0.2-cp311-cp311-linux_x86_64.whl"
NATIVE_ARM = "markupsafe-3.0.2-cp311-cp311-linux_aarch64.whl"
A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("name", "pure"),
    [
        (PURE, True),
        ("six-1.16.0-py2.py3-none-any.whl", True),
        (NATIVE_AMD, False),
        ("foo-1.0-cp311-abi3-linux_aarch64.whl", False),
        ("foo-1.0.tar.gz", False),
        ("none-any.txt", False),
    ],
)
def test_is_pure(name: str, pure: bool) -> None:
    assert is_pure(name) is pure


@pytest.mark.parametrize(
    ("results", "verdict", "disputed"),
    [
        ({"amd64": {PURE: A}, "arm64": {PURE: A}}, "agreed", ()),
        ({"amd64": {PURE: A}, "arm64": {PURE: B}}, "disputed", (PURE,)),
        ({"amd64": {PURE: A}}, "not_applicable", ()),  # one architecture: nothing to compare
        ({"amd64": {PURE: A}, "arm64": None}, "not_applicable", ()),  # arm64 agreed on nothing
        ({"amd64": {NATIVE_AMD: A}, "arm64": {NATIVE_ARM: B}}, "not_applicable", ()),
        ({}, "not_applicable", ()),
        (
            {"amd64": {PURE: A, NATIVE_AMD: A}, "arm64": {PURE: A, NATIVE_ARM: B}},
            "agreed",
            (),
        ),
        ({"amd64": {PURE: A}, "arm64": {PURE: A}, "s390x": {PURE: B}}, "disputed", (PURE,)),
    ],
)
def test_compare_arches(
    results: dict[str, dict[str, str] | None], verdict: str, disputed: tuple[str, ...]
) -> None:
    c = compare_arches(results)
    assert c.verdict == verdict
    assert tuple(o.name for o in c.disputes) == disputed


def test_the_check_names_the_wheel_the_arches_and_their_digests() -> None:
    c = compare_arches({"arm64": {PURE: B}, "amd64": {PURE: A}})
    with pytest.raises(QuorumError) as err:
        require_cross_arch(c)
    assert str(err.value).endswith(f"{PURE}: amd64 sha256:{A[:16]}…, arm64 sha256:{B[:16]}…")
    assert c.to_json() == {
        "verdict": "disputed",
        "arches": ["amd64", "arm64"],
        "outputs": {PURE: {"agreed": False, "sha256": {"amd64": A, "arm64": B}}},
    }
    require_cross_arch(compare_arches({"amd64": {PURE: A}, "arm64": {PURE: A}}))


@given(
    st.dictionaries(
        st.sampled_from(["amd64", "arm64", "s390x", "riscv64"]),
        st.one_of(
            st.none(), st.dictionaries(st.sampled_from([PURE, NATIVE_AMD]), st.sampled_from([A, B]))
        ),
    )
)
def test_the_outcome_does_not_depend_on_the_order_of_architectures(
    results: dict[str, dict[str, str] | None],
) -> None:
    assert compare_arches(results) == compare_arches(dict(reversed(list(results.items()))))


def test_a_compiled_recipe_s_wheels_are_not_compared_across_architectures() -> None:
    """markupsafe's wheels differ by design (each its platform tag and machine code): its
    architectures each verify on their own and the cross-architecture check does not apply."""
    shipped = Path(__file__).resolve().parents[3] / "recipes" / "markupsafe" / "3.0.2.yaml"
    r = load_recipe(shipped)
    agreed = {
        arch: {o.path: sha for o in r.outputs_for(arch)}
        for arch, sha in (("amd64", A), ("arm64", B))
    }
    c = compare_arches(agreed)
    assert c.verdict == "not_applicable" and c.outputs == () and c.arches == ("amd64", "arm64")
    require_cross_arch(c)  # does not raise
    # Even a compiled wheel of one name on two architectures (a glob's match) is not compared.
    assert compare_arches({"amd64": {NATIVE_AMD: A}, "arm64": {NATIVE_AMD: B}}).disputes == ()
