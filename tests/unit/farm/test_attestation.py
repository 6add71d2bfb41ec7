"""Attestation bundles: a coordinator cannot attest what the builders did not sign."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from securesystemslib.dsse import Envelope

from farm.attestation import (
    AttestationBundle,
    ResourceDescriptor,
    build_bundle,
    envelope_digest,
    verify_bundle,
)
from farm.attestation._fast import _verify_bundle_fast
from farm.attestation.build import _provenance
from farm.canonical import canonical_json
from farm.errors import FarmError, QuorumError, SignatureError
from farm.keys import KeyPair, generate_key
from farm.result import PAYLOAD_TYPE, BuildVariation
from tests.support.attest_world import ARCH, BUILD, IMAGE, RECIPE, SHA, WHEEL, World, result


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def forge(
    world: World,
    envelopes: list[dict[str, Any]],
    *,
    sha: str = SHA,
    build_id: str = BUILD,
    signer: KeyPair | None = None,
    claimed: KeyPair | None = None,
    byproducts: list[dict[str, Any]] | None = None,
    image: str = IMAGE,
) -> AttestationBundle:
    """A bundle made the way a malicious coordinator would: no checks at all."""
    claimed = claimed or world.coordinator
    signer = signer or world.coordinator
    builders = [
        json.loads(base64.b64decode(e["payload"]))["predicate"]["builder_id"] for e in envelopes
    ]
    statement = _provenance(
        RECIPE,
        "demo",
        "1.0",
        ARCH,
        build_id,
        image,
        None,
        claimed.keyid,
        3,
        frozenset({(WHEEL, sha)}),
        list(zip(builders, byproducts or envelopes, strict=True)),
    )
    env = Envelope(payload=canonical_json(statement), payload_type=PAYLOAD_TYPE, signatures={})
    env.sign(signer.signer)
    return AttestationBundle(envelope=env.to_dict(), builder_envelopes=tuple(envelopes))


def test_good_bundle_verifies(world: World) -> None:
    envelopes = [result(k) for k in world.builders[:3]]
    bundle = world.bundle(envelopes)
    verified = verify_bundle(bundle, world.builder_keys(), world.coordinator_keys(), 3)
    assert set(verified.builder_ids) == {k.keyid for k in world.builders[:3]}
    assert verified.subjects == ((WHEEL, SHA),)
    assert verified.build_id == BUILD and verified.recipe_digest == RECIPE
    assert verified.arch == ARCH
    assert verified.coordinator_id == world.coordinator.keyid
    # the builder envelopes are carried exactly as they were received
    assert list(bundle.builder_envelopes) == envelopes
    statement = json.loads(base64.b64decode(bundle.envelope["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    run = statement["predicate"]["runDetails"]
    assert run["metadata"]["invocationId"] == BUILD
    assert {b["digest"]["sha256"] for b in run["byproducts"]} == {
        envelope_digest(e) for e in bundle.builder_envelopes
    }


def test_builders_that_record_their_variation_verify_on_both_paths(world: World) -> None:
    envelopes = []
    for i, k in enumerate(world.builders[:3]):
        variation = BuildVariation(
            hostname=f"b-{k.keyid[:12]}",
            domainname="",
            umask=("0022", "0002", "0077")[i],
            cpus=1 + i % 2,
            lang=None,
            clock_offset_s=0,
            unvaried=("directory order: not varied",),
        )
        envelopes.append(result(k, variation=variation))
    envelopes[2] = result(world.builders[2])  # a builder that does not vary
    bundle = world.bundle(envelopes)
    keys = world.builder_keys()
    assert _verify_bundle_fast(bundle, keys, world.coordinator_keys(), 3) is not None
    verified = verify_bundle(bundle, keys, world.coordinator_keys(), 3)
    assert set(verified.builder_ids) == {k.keyid for k in world.builders[:3]}


def test_bundle_survives_json_round_trip(world: World) -> None:
    bundle = world.bundle()
    again = AttestationBundle.model_validate_json(bundle.model_dump_json())
    verify_bundle(again, world.builder_keys(), world.coordinator_keys(), 3)


def test_four_of_five_with_quorum_three(world: World) -> None:
    envs = [result(k) for k in world.builders[:4]]
    bundle = world.bundle(envs)
    assert (
        len(verify_bundle(bundle, world.builder_keys(), world.coordinator_keys(), 3).builder_ids)
        == 4
    )


# ---------------------------------------------------------------- build_bundle refuses

BUILD_CASES: list[tuple[str, Callable[[World], list[dict[str, Any]]], type[FarmError], str]] = [
    (
        "two builders",
        lambda w: [result(k) for k in w.builders[:2]],
        QuorumError,
        "2/3",
    ),
    (
        "same builder twice",
        lambda w: [result(w.builders[0]), result(w.builders[0]), result(w.builders[1])],
        QuorumError,
        "2/3",
    ),
    (
        "digests differ",
        lambda w: [result(k) for k in w.builders[:3]] + [result(w.builders[3], sha="5" * 64)],
        QuorumError,
        "disputed",
    ),
    (
        "result from another build",
        lambda w: (
            [result(k) for k in w.builders[:2]] + [result(w.builders[2], build_id="build-0000")]
        ),
        SignatureError,
        "is for build 'build-0000'",
    ),
    (
        "failed result",
        lambda w: (
            [result(k) for k in w.builders[:3]]
            + [result(w.builders[3], status="failed", outputs=())]
        ),
        SignatureError,
        "did not succeed",
    ),
]


@pytest.mark.parametrize(
    ("envelopes", "error", "message"),
    [c[1:] for c in BUILD_CASES],
    ids=[c[0] for c in BUILD_CASES],
)
def test_build_bundle_refuses(
    world: World,
    envelopes: Callable[[World], list[dict[str, Any]]],
    error: type[FarmError],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        world.bundle(envelopes(world))


def test_build_bundle_checks_signatures_when_given_keys(world: World) -> None:
    envs = [result(k) for k in world.builders[:3]]
    with pytest.raises(SignatureError, match="not known"):
        build_bundle(
            RECIPE, "demo", "1.0", ARCH, BUILD, envs, world.coordinator, 3,
            builder_keys=world.builder_keys(2),
        )  # fmt: skip


# -------------------------------------------- verify_bundle refuses forged bundles


def _other_sig(world: World) -> dict[str, Any]:
    """Builder 2's result carrying builder 0's signature."""
    env = result(world.builders[2])
    env["signatures"] = result(world.builders[0])["signatures"]
    return env


def _tampered_subject(world: World) -> AttestationBundle:
    bundle = forge(world, [result(k) for k in world.builders[:3]])
    statement = json.loads(base64.b64decode(bundle.envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "6" * 64
    envelope = dict(bundle.envelope)
    envelope["payload"] = base64.b64encode(canonical_json(statement)).decode()
    return AttestationBundle(envelope=envelope, builder_envelopes=bundle.builder_envelopes)


VERIFY_CASES: list[tuple[str, Callable[[World], AttestationBundle], type[FarmError], str]] = [
    (
        "two builder signatures",
        lambda w: forge(w, [result(k) for k in w.builders[:2]]),
        QuorumError,
        "2/3 distinct enrolled builders signed",
    ),
    (
        "same builder twice",
        lambda w: forge(w, [result(w.builders[0]), result(w.builders[0]), result(w.builders[1])]),
        QuorumError,
        "2/3 distinct enrolled builders signed",
    ),
    (
        "same builder twice, two different envelopes",
        lambda w: forge(
            w, [result(w.builders[0]), result(w.builders[0], exit_code=1), result(w.builders[1])]
        ),
        QuorumError,
        "2/3 distinct enrolled builders signed",
    ),
    (
        "unenrolled builder",
        lambda w: forge(w, [result(k) for k in w.builders[:2]] + [result(generate_key())]),
        SignatureError,
        r"builder [0-9a-f]{12}… is not enrolled",
    ),
    (
        "forged coordinator signature",
        lambda w: forge(w, [result(k) for k in w.builders[:3]], signer=generate_key()),
        SignatureError,
        "coordinator .* signature does not verify",
    ),
    (
        "unknown coordinator",
        lambda w: forge(
            w, [result(k) for k in w.builders[:3]], signer=(k := generate_key()), claimed=k
        ),
        SignatureError,
        "which is unknown",
    ),
    (
        "statement changed after signing",
        _tampered_subject,
        SignatureError,
        "signature does not verify",
    ),
    (
        "replayed builder result from another build",
        lambda w: forge(
            w, [result(k) for k in w.builders[:2]] + [result(w.builders[2], build_id="build-0000")]
        ),
        SignatureError,
        "is for build 'build-0000', not 'build-0001'",
    ),
    (
        "result for another recipe",
        lambda w: forge(
            w,
            [result(k) for k in w.builders[:2]]
            + [result(w.builders[2], recipe_digest="sha256:" + "9" * 64)],
        ),
        SignatureError,
        "is for recipe",
    ),
    (
        "result for another arch",
        lambda w: forge(
            w, [result(k) for k in w.builders[:2]] + [result(w.builders[2], arch="arm64")]
        ),
        SignatureError,
        "is for arch arm64",
    ),
    (
        "mismatched digests",
        lambda w: forge(
            w, [result(k) for k in w.builders[:3]] + [result(w.builders[3], sha="5" * 64)]
        ),
        QuorumError,
        "builder results differ",
    ),
    (
        "subjects are not what builders signed",
        lambda w: forge(w, [result(k, sha="7" * 64) for k in w.builders[:3]]),
        SignatureError,
        "subjects are not the outputs the builders agreed on",
    ),
    (
        "failed builder result",
        lambda w: forge(
            w, [result(k) for k in w.builders[:3]] + [result(w.builders[3], status="failed")]
        ),
        SignatureError,
        "did not succeed",
    ),
    (
        "builder signature moved to another result",
        lambda w: forge(w, [result(k) for k in w.builders[:2]] + [_other_sig(w)]),
        SignatureError,
        "does not verify",
    ),
    (
        "byproducts name other envelopes",
        lambda w: forge(
            w,
            [result(k) for k in w.builders[:3]],
            byproducts=[result(k, exit_code=7) for k in w.builders[:3]],
        ),
        SignatureError,
        "byproducts",
    ),
    (
        "image differs from builders'",
        lambda w: forge(w, [result(k) for k in w.builders[:3]], image="sha256:" + "8" * 64),
        SignatureError,
        "images",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [c[1:] for c in VERIFY_CASES],
    ids=[c[0] for c in VERIFY_CASES],
)
def test_verify_bundle_refuses(
    world: World,
    make: Callable[[World], AttestationBundle],
    error: type[FarmError],
    message: str,
) -> None:
    bundle = make(world)
    with pytest.raises(error, match=message) as info:
        verify_bundle(bundle, world.builder_keys(4), world.coordinator_keys(), 3)
    assert "\n" not in str(info.value)


def test_forge_helper_makes_valid_bundles(world: World) -> None:
    """The refusals above are for the stated reason, not for a broken forge."""
    verify_bundle(
        forge(world, [result(k) for k in world.builders[:3]]),
        world.builder_keys(),
        world.coordinator_keys(),
        3,
    )


@pytest.mark.parametrize(
    ("builders", "coordinators", "quorum", "message"),
    [
        ("none", "ok", 3, "is not enrolled"),
        ("ok", "none", 3, "cannot verify against nobody"),
        ("ok", "ok", 0, "quorum 0 is below one"),
        ("ok", "ok", 4, "3/4 distinct enrolled builders"),
    ],
)
def test_fail_closed(
    world: World, builders: str, coordinators: str, quorum: int, message: str
) -> None:
    bundle = world.bundle()
    with pytest.raises(FarmError, match=message):
        verify_bundle(
            bundle,
            world.builder_keys() if builders == "ok" else {},
            world.coordinator_keys() if coordinators == "ok" else {},
            quorum,
        )


def test_malformed_envelopes(world: World) -> None:
    bundle = world.bundle()
    bad = AttestationBundle(envelope={"payload": "!!"}, builder_envelopes=bundle.builder_envelopes)
    with pytest.raises(SignatureError, match="malformed"):
        verify_bundle(bad, world.builder_keys(), world.coordinator_keys(), 3)
    bad = AttestationBundle(envelope=bundle.envelope, builder_envelopes=({"payload": 1},))
    with pytest.raises(SignatureError, match="malformed"):
        verify_bundle(bad, world.builder_keys(), world.coordinator_keys(), 3)


def test_verify_does_not_mutate_the_bundle(world: World) -> None:
    bundle = world.bundle()
    before = bundle.model_dump_json()
    verify_bundle(bundle, world.builder_keys(), world.coordinator_keys(), 3)
    assert bundle.model_dump_json() == before


def test_source_is_a_resolved_dependency(world: World) -> None:
    source = ResourceDescriptor(
        uri="git+https://example.org/demo.git",
        digest={"gitCommit": "0123456789abcdef" * 2 + "01234567"},
    )
    envs = [result(k) for k in world.builders[:3]]
    bundle = build_bundle(
        RECIPE, "demo", "1.0", ARCH, BUILD, envs, world.coordinator, 3,
        builder_keys=world.builder_keys(), source=source,
    )  # fmt: skip
    verified = verify_bundle(bundle, world.builder_keys(), world.coordinator_keys(), 3)
    deps = verified.statement.predicate.buildDefinition.resolvedDependencies
    assert deps[0] == source and deps[1].name == "image"


def test_the_cross_architecture_record_is_carried_and_verifies_on_both_paths(
    world: World,
) -> None:
    """The coordinator signs what it compared across architectures (ADR 42): the
    attestation carries it as ``internalParameters.crossArch``, and a bundle with it
    verifies as one without."""
    cross = {
        "verdict": "agreed",
        "arches": ["amd64", "arm64"],
        "outputs": {WHEEL: {"agreed": True, "sha256": {"amd64": SHA, "arm64": SHA}}},
        "builds": {"amd64": "build-amd", "arm64": BUILD},
    }
    envs = [result(k) for k in world.builders[:3]]
    bundle = build_bundle(
        RECIPE, "demo", "1.0", ARCH, BUILD, envs, world.coordinator, 3,
        builder_keys=world.builder_keys(), cross_arch=cross,
    )  # fmt: skip
    for check in (verify_bundle, _verify_bundle_fast):
        verified = check(bundle, world.builder_keys(), world.coordinator_keys(), 3)
        assert verified is not None
        internal = verified.statement.predicate.buildDefinition.internalParameters
        assert internal == {"quorum": 3, "crossArch": cross}
    plain = build_bundle(
        RECIPE, "demo", "1.0", ARCH, BUILD, envs, world.coordinator, 3,
        builder_keys=world.builder_keys(),
    )  # fmt: skip
    statement = json.loads(base64.b64decode(plain.envelope["payload"]))
    assert statement["predicate"]["buildDefinition"]["internalParameters"] == {"quorum": 3}


def test_the_attestation_package_keeps_every_public_name() -> None:
    import farm.attestation

    public = {
        "BUILD_TYPE",
        "SLSA_PROVENANCE_V1",
        "AttestationBundle",
        "BuildDefinition",
        "ExternalParameters",
        "ProvenancePredicate",
        "ProvenanceStatement",
        "ResourceDescriptor",
        "RunDetails",
        "VerifiedBundle",
        "build_bundle",
        "coordinator_uri",
        "envelope_digest",
        "verify_bundle",
    }
    assert public <= set(farm.attestation.__all__)
    assert all(hasattr(farm.attestation, name) for name in public)
