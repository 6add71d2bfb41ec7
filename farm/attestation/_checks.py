"""Checks that building and verifying a bundle share: a builder result is for this
build, builders agree on one digest set, an envelope is a well-formed in-toto DSSE."""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from securesystemslib.dsse import Envelope

from farm.errors import QuorumError, SignatureError
from farm.quorum import tally
from farm.result import (
    PAYLOAD_TYPE,
    SignedResult,
)


def _short(keyid: str) -> str:
    return keyid[:12] + "…"


def _check_result_matches(
    result: SignedResult,
    build_id: str,
    recipe_digest: str,
    arch: str,
) -> None:
    p = result.predicate
    who = f"builder {_short(p.builder_id)}"
    if p.build_id != build_id:
        raise SignatureError(f"{who} result is for build {p.build_id!r}, not {build_id!r}")
    if p.recipe_digest != recipe_digest:
        raise SignatureError(f"{who} result is for recipe {p.recipe_digest}, not {recipe_digest}")
    if p.arch != arch:
        raise SignatureError(f"{who} result is for arch {p.arch}, not {arch}")
    if p.status != "succeeded":
        raise SignatureError(f"{who} result did not succeed ({p.status})")


def _agree(
    results: Sequence[SignedResult], quorum: int
) -> tuple[frozenset[tuple[str, str]], tuple[str, ...]]:
    """The agreed digest set and the distinct builders that signed it, or QuorumError."""
    if quorum < 1:
        raise QuorumError(f"quorum {quorum} is below one; nothing can be attested")
    t = tally(results, quorum)
    if len(t.groups) > 1:
        top, other = t.groups[0], t.groups[1]
        raise QuorumError(
            f"builder results differ: {len(top.builders)} signed {top.describe()}, "
            f"builder {', '.join(_short(b) for b in other.builders)} signed {other.describe()}"
        )
    group = t.majority
    count = 0 if group is None else len(group.builders)
    if group is None or count < quorum:
        what = "identical outputs" if group is None else group.describe()
        raise QuorumError(f"{count}/{quorum} distinct enrolled builders signed {what}")
    return group.digests, group.builders


def _decode(data: object, what: str) -> Envelope:
    if not isinstance(data, dict):
        raise SignatureError(f"{what} is not a JSON object")
    try:
        # from_dict consumes what it reads; keep the caller's envelope as received.
        signatures = data.get("signatures")
        if not isinstance(signatures, list) or not all(isinstance(x, dict) for x in signatures):
            raise ValueError("signatures is not a list of objects")
        envelope = Envelope.from_dict({**data, "signatures": [dict(x) for x in signatures]})
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise SignatureError(f"malformed {what}: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{what}: unexpected payload type {envelope.payload_type!r}")
    return envelope
