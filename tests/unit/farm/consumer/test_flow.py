"""Which artifacts of a release `farm pull` takes, by architecture."""

from __future__ import annotations

import pytest

from farm.consumer.flow import _choose, host_arch
from farm.errors import ConfigError
from farm.evidence import ArtifactEvidence
from tests.support.evidence import MiniLedger


def _with_arch(evidence: ArtifactEvidence, arch: str) -> ArtifactEvidence:
    return evidence.model_copy(
        update={"artifact": evidence.artifact.model_copy(update={"arch": arch})}
    )


@pytest.fixture(scope="module")
def evidence() -> ArtifactEvidence:
    ledger = MiniLedger()
    return ledger.evidence(*ledger.attest())


@pytest.mark.parametrize(
    ("arches", "asked", "taken"),
    [
        (["amd64", "arm64"], "arm64", ["arm64"]),
        (["amd64", "arm64", "arm64"], "arm64", ["arm64", "arm64"]),
        (["riscv64"], None, ["riscv64"]),  # the only arch there is, when none was asked
        ([host_arch(), "s390x"], None, [host_arch()]),
    ],
)
def test_choose(
    evidence: ArtifactEvidence, arches: list[str], asked: str | None, taken: list[str]
) -> None:
    chosen = _choose([_with_arch(evidence, a) for a in arches], asked, "demo", "1.0")
    assert [e.artifact.arch for e in chosen] == taken


def test_choose_explains_a_missing_arch(evidence: ArtifactEvidence) -> None:
    with pytest.raises(ConfigError, match="no artifact for arch arm64; it has amd64, s390x"):
        _choose(
            [_with_arch(evidence, "amd64"), _with_arch(evidence, "s390x")], "arm64", "demo", "1.0"
        )
