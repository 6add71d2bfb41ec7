"""The coordinator's side of the ledger: enroll approved builders, attest verified builds.

:class:`LedgerClient` posts transaction bytes to the validators' ``POST /v1/tx`` and
believes no single validator (ADR 0030, :mod:`farm.coordinator.receipts`):

- a 200 counts only with a receipt that proves the commit: the transaction sent is the
  leaf at the receipt's index, under a checkpoint 2f+1 validators of the genesis
  co-signed. A receipt whose checkpoint is not yet 2f+1 co-signed is completed from
  the same validator (``GET /v1/checkpoint``, ``/v1/proofs/inclusion``); a receipt that
  still fails is a lie: logged with the validator's URL and why, and the next validator
  is asked;
- a 400 is final (:class:`~farm.errors.TransactionError`) only when f+1 validators
  whose logs hold the transaction's dependencies (``GET /v1/status``) give the same
  reason; otherwise it is transient like an unreachable validator, busy (503) or timed
  out (504) one: the next validator is tried, and the whole list again after a backoff.

:meth:`LedgerClient.read` relays the validators' reads (checkpoint, proofs, status)
with the same failover, starting from the validator that answered last; when none
answers it raises :class:`~farm.coordinator.errors.LedgerUnavailableError`.

:class:`LedgerPublisher` runs in ``farm serve`` beside the scheduler. Each pass it

1. relays the enroll transaction the operator signed at approval (``farm operator
   approve``; checked against the genesis operators and chain id when it arrived,
   :mod:`farm.coordinator.operator_txs`) for every approved builder not yet on the
   ledger, and stores the log index (or the ledger's final reason for refusing); it
   signs no operator transaction itself and holds no operator key (ADR 34);
2. for every ``verified`` build without an attestation whose agreeing builders are
   all enrolled on the ledger, builds the attestation bundle from their accepted
   envelopes, submits the attest transaction and stores the verified receipt (index,
   tx id, inclusion proof, tree size, co-signed checkpoint note), or the final
   rejection with its reason;
3. relays every pending revocation (signed by the operator who asked for it,
   :mod:`farm.coordinator.revocations`) and stores its receipt or the refusal.

:meth:`LedgerPublisher.wake` starts a pass now (a revocation was just asked for).

A disputed or failed build is never submitted. A transient failure stores nothing and
the item is retried on a later pass (with a per-item backoff). Transaction bytes are
made with :mod:`farm.transactions`; the coordinator never imports the ledger.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from farm.attestation import build_bundle
from farm.coordinator.errors import BadRequestError, LedgerUnavailableError, NotFoundError
from farm.coordinator.models import (
    Attestation,
    AttestationArtifact,
    Build,
    Builder,
    BuildResultRow,
    Revocation,
)
from farm.coordinator.operator_txs import OperatorTrust
from farm.coordinator.receipts import (
    LedgerTrust,
    Receipt,
    ReceiptError,
    Refusal,
    UntrustedCheckpointError,
    VerifiedReceipt,
    check_included,
    check_receipt,
    final_refusal,
)
from farm.coordinator.revocations import pending_revocations
from farm.errors import FarmError, LedgerError, TransactionError
from farm.keys import KeyPair
from farm.result import envelope_payload
from farm.transactions import make_attest, tx_id

__all__ = ["LedgerClient", "LedgerPublisher", "LedgerTrust", "Receipt", "VerifiedReceipt"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass
class LedgerClient:
    """Submit transactions to any of ``urls`` (validators' HTTP base URLs)."""

    urls: Sequence[str]
    trust: LedgerTrust
    """The genesis validators whose 2f+1 co-signatures make a receipt believable."""
    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    read_timeout: float = 5.0
    """Seconds one read may take from one validator before the next is asked."""
    cosign_polls: int = 3
    """Reads of a newer checkpoint when a receipt's is not yet 2f+1 co-signed."""
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    _http: httpx.Client = field(init=False, repr=False)
    _first: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise LedgerError("no ledger validator URL given")
        self._http = httpx.Client(timeout=self.timeout, transport=self.transport)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def submit(self, tx: bytes, *, after: int = 0) -> VerifiedReceipt:
        """Submit ``tx`` and return its proven receipt once committed.

        ``after`` is the log size the transaction depends on (entries it needs applied,
        e.g. its builders' enrollments): a refusal counts only from a validator whose
        log is at least that long.

        Raises:
            TransactionError: f+1 validators at or past ``after`` refused it for the
                same reason (the message).
            LedgerError: no validator proved a commit and no refusal is final after
                every attempt (transient: try again later).
        """
        last = "no attempt"
        refusals: dict[str, Refusal] = {}
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            for url in self.urls:
                try:
                    response = self._http.post(
                        url.rstrip("/") + "/v1/tx",
                        content=tx,
                        headers={"content-type": "application/octet-stream"},
                    )
                except httpx.HTTPError as exc:
                    last = f"{url}: {type(exc).__name__}: {exc}"
                    continue
                if response.status_code == 200:
                    try:
                        return self._proven(url, tx, response)
                    except ReceiptError as exc:
                        log.warning("validator %s sent a receipt that proves nothing: %s", url, exc)
                        last = f"{url}: receipt refused: {exc}"
                        continue
                message = _error_message(response)
                last = f"{url}: {response.status_code} {message}"
                if response.status_code == 400:
                    refusals[url] = refusal = Refusal(url, message, self._log_size(url))
                    log.info(
                        "validator %s refused tx %s (its log: %s, needed: %d): %s",
                        url, tx_id(tx)[:12], refusal.log_size, after, message,
                    )  # fmt: skip
                    reason = final_refusal(list(refusals.values()), after, self.trust)
                    if reason is not None:
                        raise TransactionError(reason)
        if refusals:
            seen = "; ".join(
                f"{r.validator} (log {r.log_size}): {r.reason}" for r in refusals.values()
            )
            last += f"; refusals not yet final: {seen}"
        raise LedgerError(f"transaction {tx_id(tx)[:12]} not committed: {last}")

    def _proven(self, url: str, tx: bytes, response: httpx.Response) -> VerifiedReceipt:
        """The receipt of a 200, proven; a checkpoint not yet 2f+1 co-signed is
        replaced by a newer one and its inclusion proof from the same validator."""
        try:
            receipt = Receipt.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise ReceiptError(f"malformed receipt: {exc}") from None
        try:
            return check_receipt(receipt, tx, self.trust)
        except UntrustedCheckpointError as exc:
            first = exc
        base = url.rstrip("/")
        for wait in range(self.cosign_polls):
            if wait:
                self.sleep(self.backoff)
            try:
                cp = _Checkpoint.model_validate(self._get_json(base + "/v1/checkpoint", None))
                if cp.size <= receipt.index:
                    continue
                proof = _Inclusion.model_validate(
                    self._get_json(
                        base + "/v1/proofs/inclusion", {"index": receipt.index, "size": cp.size}
                    )
                )
            except (httpx.HTTPError, ValueError, ValidationError):
                continue
            try:
                check_included(tx, receipt.index, cp.size, proof.proof, cp.note, self.trust)
            except UntrustedCheckpointError:
                continue
            return VerifiedReceipt(
                index=receipt.index,
                tx_id=tx_id(tx),
                height=receipt.height,
                tree_size=cp.size,
                inclusion_proof=tuple(proof.proof),
                checkpoint=cp.note,
            )
        raise ReceiptError(f"{first}, and no newer checkpoint proves entry {receipt.index}")

    def _get_json(self, url: str, params: dict[str, int] | None) -> Any:
        response = self._http.get(url, params=params, timeout=self.read_timeout)
        response.raise_for_status()
        return response.json()

    def _log_size(self, url: str) -> int | None:
        """The size of ``url``'s log as its ``GET /v1/status`` shows it, or None."""
        try:
            status = self._get_json(url.rstrip("/") + "/v1/status", None)
            size = status["size"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def read(self, path: str, model: type[M], params: dict[str, int] | None = None) -> M:
        """GET ``path`` from a validator and validate the answer as ``model``.

        Validators are asked in turn, starting from the one that answered last; one
        that cannot be reached, times out, answers 5xx or answers nonsense is skipped.

        Raises:
            NotFoundError: the validator has no such thing (404).
            BadRequestError: the validator refused the query (400), e.g. past the log.
            LedgerUnavailableError: no validator answered.
        """
        problems = []
        n = len(self.urls)
        for k in range(n):
            i = (self._first + k) % n
            url = self.urls[i].rstrip("/") + path
            try:
                response = self._http.get(url, params=params, timeout=self.read_timeout)
            except httpx.HTTPError as exc:
                problems.append(f"{self.urls[i]}: {type(exc).__name__}")
                continue
            if response.status_code in (400, 404):
                self._first = i
                message = _error_message(response)
                if response.status_code == 404:
                    raise NotFoundError(f"ledger: {message}")
                raise BadRequestError(f"ledger: {message}")
            if response.status_code != 200:
                problems.append(f"{self.urls[i]}: HTTP {response.status_code}")
                continue
            try:
                answer = model.model_validate(response.json())
            except (ValueError, ValidationError):
                problems.append(f"{self.urls[i]}: malformed answer")
                continue
            self._first = i
            return answer
        raise LedgerUnavailableError(f"no ledger validator answered {path}: " + "; ".join(problems))


class _Checkpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    size: int
    note: str


class _Inclusion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    proof: tuple[str, ...]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


@dataclass
class LedgerPublisher:
    """Enroll approved builders and attest verified builds (see the module docstring)."""

    engine: Engine
    client: LedgerClient
    coordinator_key: KeyPair
    operators: OperatorTrust
    """The genesis operators and chain id: the operator transactions relayed must be
    signed by one of them, for that chain (the publisher signs none itself)."""
    clock: Callable[[], datetime]
    retry_after: float = 2.0
    _waiting: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def wake(self) -> None:
        """Start the next pass now instead of after the interval."""
        self._wake.set()

    def tick(self) -> None:
        """One pass: enrolls first (an attestation needs its builders enrolled)."""
        with Session(self.engine, expire_on_commit=False) as session:
            builders = session.exec(
                select(Builder).where(
                    col(Builder.approved).is_(True),
                    col(Builder.ledger_index).is_(None),
                    col(Builder.ledger_error).is_(None),
                )
            ).all()
            for builder in builders:
                if self._due(f"builder:{builder.id}"):
                    self._enroll(session, builder)
            done = select(Attestation.build_id)
            builds = session.exec(
                select(Build)
                .where(Build.status == "verified", col(Build.id).not_in(done))
                .order_by(col(Build.finished_at))
            ).all()
            for build in builds:
                if self._due(f"build:{build.id}"):
                    self._attest(session, build)
            for revocation in pending_revocations(session):
                if self._due(f"revocation:{revocation.id}"):
                    self._revoke(session, revocation)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Call :meth:`tick` every ``interval`` seconds (or when woken) until ``stop``."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # keep publishing; one bad pass must not end the thread
                log.exception("ledger publisher pass failed")
            self._wake.wait(interval)
            self._wake.clear()
        self.client.close()

    def _revoke(self, session: Session, row: Revocation) -> None:
        attested = session.exec(
            select(Attestation.ledger_index)
            .join(AttestationArtifact, col(AttestationArtifact.tx_id) == col(Attestation.tx_id))
            .where(AttestationArtifact.sha256 == row.sha256)
        ).all()
        after = max((i + 1 for i in attested if i is not None), default=0)
        try:
            receipt = self.client.submit(row.tx.encode("utf-8"), after=after)
        except TransactionError as exc:
            row.status = "rejected"
            row.error = str(exc)[:2000]
            log.warning("revocation %s refused by the ledger: %s", row.id, exc)
        except LedgerError as exc:
            self._later(f"revocation:{row.id}", exc)
            return
        else:
            row.status = "committed"
            row.ledger_index = receipt.index
            row.height = receipt.height
            row.tree_size = receipt.tree_size
            row.inclusion_proof = list(receipt.inclusion_proof)
            row.checkpoint = receipt.checkpoint
            log.info("sha256:%s revoked at ledger index %d", row.sha256[:16], receipt.index)
        row.decided_at = self.clock()
        session.add(row)
        session.commit()

    def _due(self, key: str) -> bool:
        return self._waiting.get(key, 0.0) <= time.monotonic()

    def _later(self, key: str, exc: Exception) -> None:
        log.warning("%s: ledger unavailable, retrying: %s", key, exc)
        self._waiting[key] = time.monotonic() + self.retry_after

    def _enroll(self, session: Session, builder: Builder) -> None:
        key = f"builder:{builder.id}"
        if builder.enroll_tx is None:
            return  # approved without a signed enroll transaction: nothing to relay
        try:
            receipt = self.client.submit(builder.enroll_tx.encode("utf-8"))
        except TransactionError as exc:
            builder.ledger_error = str(exc)[:2000]
            log.warning("enroll of builder %s refused by the ledger: %s", builder.id[:12], exc)
        except LedgerError as exc:
            self._later(key, exc)
            return
        else:
            builder.ledger_index = receipt.index
            builder.ledger_tx_id = receipt.tx_id
            log.info("builder %s enrolled at ledger index %d", builder.id[:12], receipt.index)
        session.add(builder)
        session.commit()

    def _attest(self, session: Session, build: Build) -> None:
        key = f"build:{build.id}"
        agreed = [str(b) for b in (build.verdict or {}).get("agreed", [])]
        enrolled = session.exec(
            select(Builder.id, Builder.ledger_index).where(
                col(Builder.id).in_(agreed), col(Builder.ledger_index).is_not(None)
            )
        ).all()
        if len({b for b, _ in enrolled}) < len(set(agreed)):
            return  # wait until every agreeing builder is on the ledger
        after = max((i + 1 for _, i in enrolled if i is not None), default=0)
        rows = session.exec(
            select(BuildResultRow).where(
                BuildResultRow.build_id == build.id,
                BuildResultRow.status == "accepted",
                col(BuildResultRow.builder_id).in_(agreed),
            )
        ).all()
        envelopes = [row.envelope for row in sorted(rows, key=lambda r: r.builder_id)]
        try:
            bundle = build_bundle(
                build.recipe_digest,
                build.name,
                build.version,
                build.arch,
                build.id,
                envelopes,
                self.coordinator_key,
                build.quorum,
                cross_arch=(build.verdict or {}).get("cross_arch"),
            )
        except FarmError as exc:
            self._store(session, build, {}, b"", rejected=f"no attestation bundle: {exc}")
            return
        tx = make_attest(bundle)
        bundle_json = bundle.model_dump(mode="json")
        try:
            receipt = self.client.submit(tx, after=after)
        except TransactionError as exc:
            self._store(session, build, bundle_json, tx, rejected=str(exc))
            return
        except LedgerError as exc:
            self._later(key, exc)
            return
        self._store(session, build, bundle_json, tx, receipt=receipt)

    def _store(
        self,
        session: Session,
        build: Build,
        bundle: dict[str, Any],
        tx: bytes,
        *,
        receipt: VerifiedReceipt | None = None,
        rejected: str | None = None,
    ) -> None:
        row = Attestation(
            tx_id=tx_id(tx) if tx else tx_id(f"unbuilt:{build.id}".encode()),
            build_id=build.id,
            status="committed" if receipt is not None else "rejected",
            reason=None if rejected is None else rejected[:2000],
            name=build.name,
            version=build.version,
            arch=build.arch,
            recipe_digest=build.recipe_digest,
            bundle=bundle,
            submitted_at=self.clock(),
        )
        if receipt is not None:
            row.ledger_index = receipt.index
            row.height = receipt.height
            row.tree_size = receipt.tree_size
            row.inclusion_proof = list(receipt.inclusion_proof)
            row.checkpoint = receipt.checkpoint
            log.info("build %s attested at ledger index %d", build.id, receipt.index)
        else:
            log.warning("attestation of build %s refused: %s", build.id, rejected)
        session.add(row)
        if bundle:
            statement = json.loads(envelope_payload(bundle["envelope"]))
            for subject in statement["subject"]:
                session.add(
                    AttestationArtifact(
                        tx_id=row.tx_id,
                        name=str(subject["name"]),
                        sha256=str(subject["digest"]["sha256"]),
                    )
                )
        session.commit()
