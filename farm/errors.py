"""Every error farm raises on purpose.

The tree::

    FarmError
    ├── ConfigError              a setting or file that cannot be used as given
    ├── RecipeError              a recipe that does not parse or validate
    ├── SigningKeyError          a key that cannot be read, made or used
    ├── SignatureError           a signature or envelope that does not verify
    ├── FetchError               a source or dependency not fetched or not matching its pin
    ├── BuildError               a build that could not run to a result
    │   ├── ArchitectureError    an architecture this builder cannot build
    │   ├── ImageError           the pinned image is not present or not what it claims
    │   ├── SandboxError         the container could not be set up or cleaned up
    │   └── OutputError          an output that escapes, is a symlink, or is too large
    ├── QuorumError              builders did not agree, or too few finished
    └── LedgerError              (raised by the ledger package, rooted here)
        └── TransactionError     a ledger transaction that is malformed or refused

Callers catch ``FarmError``; the command line turns it into one line and exit status 1.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureError",
    "BuildError",
    "ConfigError",
    "FarmError",
    "FetchError",
    "ImageDriftError",
    "ImageError",
    "LedgerError",
    "OutputError",
    "QuorumError",
    "RecipeError",
    "SandboxError",
    "SignatureError",
    "SigningKeyError",
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


class FetchError(FarmError):
    """A source or dependency that cannot be fetched or does not match its pin."""


class BuildError(FarmError):
    """A build that could not run to a result."""


class ArchitectureError(BuildError):
    """An architecture this builder host cannot build."""


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


class SandboxError(BuildError):
    """The hermetic container could not be created, run or removed."""


class OutputError(BuildError):
    """An output that escapes the output directory, is a link, or exceeds a limit."""


class QuorumError(FarmError):
    """Builders disagreed, or too few of them finished."""


class LedgerError(FarmError):
    """Root of the ledger package's errors."""


class TransactionError(LedgerError):
    """A transaction refused by validation; the message is the reason."""
