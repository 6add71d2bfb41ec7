"""Keys, builder results and bundles shared by the attestation and ledger tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from securesystemslib.signer import SSlibKey

from farm.attestation import AttestationBundle, build_bundle
from farm.keys import KeyPair, generate_key
from farm.result import BuildPredicate, OutputDigest, sign_result

RECIPE = "sha256:" + "1" * 64
IMAGE = "sha256:" + "2" * 64
BUILD = "build-0001"
ARCH = "amd64"
WHEEL = "demo-1.0-py3-none-any.whl"
SHA = "4" * 64


def result(key: KeyPair, **changes: Any) -> dict[str, Any]:
    """A signed, successful result envelope of ``key`` for the default build."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "build_id": BUILD,
        "recipe_digest": RECIPE,
        "recipe_name": "demo",
        "recipe_version": "1.0",
        "image_digest": IMAGE,
        "arch": ARCH,
        "builder_id": key.keyid,
        "started_at": now,
        "finished_at": now,
        "status": "succeeded",
        "exit_code": 0,
        "log_sha256": "3" * 64,
        "outputs": (OutputDigest(name=WHEEL, sha256=SHA, size=10),),
    }
    if "sha" in changes:
        values["outputs"] = (OutputDigest(name=WHEEL, sha256=changes.pop("sha"), size=10),)
    values.update(changes)
    return sign_result(BuildPredicate(**values), key)


@dataclass
class World:
    """Builders, a coordinator and an operator with deterministic-enough keys."""

    builders: list[KeyPair] = field(default_factory=lambda: [generate_key() for _ in range(5)])
    coordinator: KeyPair = field(default_factory=generate_key)
    operator: KeyPair = field(default_factory=generate_key)
    quorum: int = 3

    def builder_keys(self, n: int | None = None) -> dict[str, SSlibKey]:
        return {k.keyid: k.public for k in self.builders[:n]}

    def coordinator_keys(self) -> dict[str, SSlibKey]:
        return {self.coordinator.keyid: self.coordinator.public}

    def bundle(
        self,
        envelopes: list[dict[str, Any]] | None = None,
        *,
        build_id: str = BUILD,
        sha: str = SHA,
        quorum: int | None = None,
    ) -> AttestationBundle:
        if envelopes is None:
            envelopes = [
                result(k, build_id=build_id, sha=sha) for k in self.builders[: self.quorum]
            ]
        return build_bundle(
            RECIPE,
            "demo",
            "1.0",
            ARCH,
            build_id,
            envelopes,
            self.coordinator,
            self.quorum if quorum is None else quorum,
        )
