"""Every error farm raises on purpose.

The tree::

    FarmError
    ├── ConfigError              a setting or file that cannot be used as given
    ├── RecipeError              a recipe that does not parse or validate
    ├── SigningKeyError          a key that cannot be read, made or used
    ├── SignatureError           a signature or envelope that does not verify
    │   └── TaskRefusedError     a build task a builder will not run (unsigned, another
    │                            key, altered, addressed to another builder; ADR 41)
    ├── ContentError             a file the content-addressed store cannot take
    │   └── DigestMismatchError  content whose sha256 is not the digest it was given under
    ├── BuildError               a build that could not run to a result
    │   └── ImageError           the pinned image is not present or not what it claims
    │       └── ImageDriftError  this host builds another image than the one pinned
    ├── QuorumError              builders did not agree, or too few finished
    │   └── DomainShortfallError the agreeing builders span fewer than quorum domains
    └── LedgerError              (raised by the ledger package, rooted here)
        ├── TransactionError     a ledger transaction that is malformed or refused
        ├── ProofError           an inclusion or consistency proof that does not verify
        └── CheckpointError      a checkpoint that is malformed or lacks enough known signatures

Errors only one package raises live in that package, rooted here: the builder host's
(``FetchError``, and the ``BuildError``s ``ArchitectureError``, ``SandboxError``,
``OutputError``) in :mod:`builders.errors`, the coordinator's in
:mod:`farm.coordinator.errors`.

Callers catch ``FarmError``; the command line turns it into one line and exit status 1.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "CheckpointError",
    "ConfigError",
    "ContentError",
    "DigestMismatchError",
    "DomainShortfallError",
    "FarmError",
    "ImageDriftError",
    "ImageError",
    "LedgerError",
    "ProofError",
    "QuorumError",
    "RecipeError",
    "SignatureError",
    "SigningKeyError",
    "TaskRefusedError",
    "TransactionError",
]


class FarmError(Exception):
    """Root of every error farm raises deliberately."""


class ConfigError(FarmError):
    """A setting, path or file that cannot be used as given."""


class RecipeError(FarmError):
    """A recipe that does not parse or validate."""


class SigningKeyError(FarmError):
    """A key that cannot be read, created or used."""


class SignatureError(FarmError):
    """A signature, envelope or statement that does not verify."""


class TaskRefusedError(SignatureError):
    """A build task a builder will not run: unsigned, signed by another key than the
    coordinator's it trusts, altered, or addressed to another builder (ADR 41)."""


class ContentError(FarmError):
    """A file the content-addressed store (:mod:`farm.content_store`) cannot take."""


class DigestMismatchError(ContentError):
    """Content whose sha256 is not the digest it was given, or stored, under."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: content is sha256:{actual}, expected sha256:{expected}")


class BuildError(FarmError):
    """A build that could not run to a result."""


class ImageError(BuildError):
    """The pinned builder image is absent or is not what its digest says."""


class ImageDriftError(ImageError):
    """This host builds another builder image than the one pinned (Debian moved on)."""

    def __init__(self, pinned: str, built: str) -> None:
        self.pinned = pinned
        self.built = built
        super().__init__(
            f"the recipe pins builder image {pinned} but this host built {built}: the Debian "
            "packages it is made from have changed since the recipe was pinned "
            "(see deploy/builder-image/README.md: rebuild and re-pin)"
        )


class QuorumError(FarmError):
    """Builders disagreed, or too few of them finished."""


class DomainShortfallError(QuorumError):
    """The agreeing builders span fewer than ``quorum`` independence domains
    (``farm.quorum.domain_shortfall``): enough keys agreed, but not enough
    independent organisations or sites."""


class LedgerError(FarmError):
    """Root of the ledger package's errors."""


class TransactionError(LedgerError):
    """A transaction refused by validation; the message is the reason."""


class ProofError(LedgerError):
    """An inclusion or consistency proof that does not verify (:mod:`farm.merkle`)."""


class CheckpointError(LedgerError):
    """A checkpoint that is malformed or does not carry enough known signatures."""
