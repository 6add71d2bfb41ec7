"""The consumer's files: its trust memory, and the evidence saved next to an artifact.

The memory of one ledger is ``STATE_DIR/ledgers/<genesis hash>.json``
(:class:`~farm.consumer.trust.TrustMemory`). It only ever grows: :func:`remember`
takes a lock, re-reads the file and writes the new value only if its tree is larger,
so two concurrent pulls cannot make it forget a larger tree. Files are replaced
atomically (temporary file, fsync, rename).

The state directory is ``--state-dir``, else ``$FARM_STATE_DIR``, else
``$XDG_STATE_HOME/farm``, else ``~/.local/state/farm``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from farm.consumer.trust import TrustMemory
from farm.errors import ConfigError
from farm.evidence import ArtifactEvidence

__all__ = [
    "EVIDENCE_SUFFIX",
    "default_state_dir",
    "evidence_path",
    "load_evidence",
    "load_memory",
    "remember",
    "write_atomic",
]

EVIDENCE_SUFFIX = ".farm-evidence.json"


def default_state_dir() -> Path:
    """``$FARM_STATE_DIR``, else ``$XDG_STATE_HOME/farm``, else ``~/.local/state/farm``."""
    explicit = os.environ.get("FARM_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "farm"


def _memory_path(state_dir: Path, genesis_hash: str) -> Path:
    return state_dir / "ledgers" / f"{genesis_hash}.json"


def load_memory(state_dir: Path, genesis_hash: str) -> TrustMemory | None:
    """The remembered checkpoint of the ledger ``genesis_hash``, or None if there is none.

    Raises ConfigError for a memory file that cannot be read or is not valid: a
    damaged memory is never silently treated as none (that would allow a rollback).
    """
    path = _memory_path(state_dir, genesis_hash)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the trust memory: {exc.strerror}") from None
    try:
        memory = TrustMemory.model_validate_json(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: the trust memory is damaged ({exc.errors()[0]['msg']}); "
            "inspect it, and delete it only if you know why"
        ) from None
    if memory.genesis_hash != genesis_hash:
        raise ConfigError(f"{path}: the trust memory is for another ledger")
    return memory


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remember(state_dir: Path, memory: TrustMemory) -> TrustMemory:
    """Store ``memory`` unless a larger tree is already remembered; return what is kept.

    The caller verified ``memory``'s checkpoint against the one remembered before (see
    :func:`farm.consumer.verify.verify_artifact`); this only keeps the file monotonic.
    """
    path = _memory_path(state_dir, memory.genesis_hash)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (path.parent / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = load_memory(state_dir, memory.genesis_hash)
            if current is not None and (
                current.tree_size > memory.tree_size
                or (
                    current.tree_size == memory.tree_size
                    and (current.checkpoint_time or 0) >= (memory.checkpoint_time or 0)
                )
            ):
                return current
            write_atomic(path, memory.model_dump_json(indent=2).encode() + b"\n", 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save the trust memory: {exc.strerror}") from None
    return memory


def evidence_path(artifact: Path) -> Path:
    """Where the evidence of ``artifact`` is kept: ``FILE.farm-evidence.json``."""
    return artifact.with_name(artifact.name + EVIDENCE_SUFFIX)


def load_evidence(path: Path) -> ArtifactEvidence:
    """Read an evidence file. Raises ConfigError if it cannot be read or parsed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the evidence: {exc.strerror}") from None
    try:
        return ArtifactEvidence.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"{path}: not farm evidence: {str(exc).splitlines()[0]}") from None
