"""The scheduler: from a requested build to its verdict, one pass at a time.

A build requested through the API or the recipe follower is stored ``pending`` and
``managed``. Each :meth:`Scheduler.tick`:

* gives every pending build ``quorum`` healthy approved builders of its architecture
  (never two in one independence domain, ADR 35), records one
  :class:`~farm.coordinator.models.BuildAttempt` per builder and sends each its task
  on its own queue (a build short of builders stays pending, with a note saying why);
* settles the dispatched attempts of running builds from what the coordinator has
  *recorded* (the results builders posted): ``succeeded``, ``failed`` (the builder's
  own signed failure), ``refused`` (the coordinator refused what it sent), or
  ``timed_out`` (no result by the recipe timeout plus a margin), or ``lost`` (the
  builder's host has not been heard from for ``lost_after`` seconds: a host that died
  mid-build is replaced within that bound, not only at the recipe timeout), or
  ``interrupted`` (the builder signed a failure of kind ``infrastructure``: its own
  host failed, e.g. its Docker Engine was stopping; not the build's failure);
* sends an ``interrupted`` attempt's task again to the *same* builder, after
  ``interruption_pause`` (it builds when its host is back), and a ``lost`` one too when
  no other builder can replace it, at most ``max_interruptions`` times per attempt
  (counted in ``attempt.interruptions``; then it is treated as any other given-up
  attempt), so that restarting a builder host never fails a build and a broken host
  cannot hold one forever (ADR 37);
* replaces each other attempt that did not succeed by another healthy builder, at most
  ``max_retries`` times per build, each replacement recorded on the attempt it
  replaces and counted in ``build.retries``;
* finalizes a build once no attempt is outstanding (the verdict counts every accepted
  result: a failed builder does not block agreement among the others), and makes
  diffoscope reports of a disputed one.

Everything lives in the database, so a restarted coordinator resumes where it was:
:meth:`Scheduler.resume` sends the tasks of outstanding attempts again (a builder
answers a repeated task with the result it already has). The broker is not trusted to
keep what it was given either: a task that could not be sent (the broker away) is sent
again on every pass until it is, and when the dispatcher reports that the broker lost
its contents (:meth:`Dispatcher.broker_reset`: wiped, or replaced by an empty one), every
outstanding task is sent again, as on a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from farm.coordinator import service
from farm.coordinator.errors import ConflictError
from farm.coordinator.models import Build, BuildAttempt, Builder, BuildResultRow, utcnow
from farm.coordinator.report_worker import needs_reports
from farm.coordinator.staging import Staging
from farm.errors import FarmError
from farm.logs import bind
from farm.recipe import Recipe, parse_recipe
from farm.result import envelope_payload, parse_statement
from farm.task import new_build_id

__all__ = ["Dispatcher", "Scheduler", "SchedulerConfig", "request_build"]

log = logging.getLogger(__name__)

#: Attempt states that ended without a result: the attempt is replaced (within the bound).
GIVEN_UP = ("failed", "timed_out", "refused", "lost", "interrupted")


class Dispatcher(Protocol):
    """How a task reaches one builder (Celery in production; anything in tests)."""

    def send(self, recipe: Recipe, arch: str, builder: Builder, build_id: str) -> None:
        """Queue ``recipe`` on ``arch`` for ``builder``; raise :class:`FarmError` if not sent."""

    def failure(self, build_id: str, arch: str, builder_id: str) -> str | None:
        """What the broker says about the builder's task ending without a result, if
        anything (else None). Unsigned: logged, never taken as the attempt's end (ADR 41)."""

    def broker_reset(self) -> bool:
        """Whether the broker lost what it held since this was last asked (True once per
        loss; False while that cannot be told, e.g. the broker is unreachable)."""


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler's knobs (from :class:`~farm.coordinator.settings.CoordinatorSettings`)."""

    timeout_margin: float = 120.0
    max_retries: int = 2
    heartbeat_within: float = 60.0
    lost_after: float = 90.0
    """Seconds without a heartbeat from a builder after which its outstanding attempts
    are given up (``lost``) and replaced; counted afresh after the scheduler itself was
    away (started, paused, failing passes), so it first hears its builders again."""
    max_interruptions: int = 3
    """Times one attempt's task is sent again to the same builder after its host failed
    the build (``interrupted``) or fell silent with no spare (``lost``); then given up."""
    interruption_pause: float = 10.0
    """Seconds an ``interrupted`` attempt waits before its task is sent again (a host
    going down would fail it again at once); the build stays open meanwhile."""


def request_build(
    session: Session,
    recipe: Recipe,
    now: datetime,
    *,
    arches: list[str] | None = None,
    origin: str = "api",
) -> list[Build]:
    """Record one pending, scheduler-managed build of ``recipe`` per architecture."""
    wanted = arches or list(recipe.architectures)
    builds = []
    for arch in dict.fromkeys(wanted):
        build = service.create_build(session, recipe, arch, [], new_build_id(), now)
        build.managed = True
        build.origin = origin[:255]
        session.add(build)
        session.commit()
        builds.append(build)
        log.info("build %s of %s on %s requested (%s)", build.id, recipe.label, arch, origin)
    return builds


def _result_state(session: Session, attempt: BuildAttempt) -> tuple[str, str | None] | None:
    rows = session.exec(
        select(BuildResultRow)
        .where(
            BuildResultRow.build_id == attempt.build_id,
            BuildResultRow.builder_id == attempt.builder_id,
        )
        .order_by(col(BuildResultRow.id))
    ).all()
    accepted = next((r for r in rows if r.status == "accepted"), None)
    if accepted is not None:
        if accepted.build_status == "succeeded":
            return "succeeded", None
        try:
            error = parse_statement(envelope_payload(accepted.envelope)).predicate.error
        except (FarmError, KeyError, ValueError):
            error = None
        return "failed", error or "the builder reported a failed build"
    # Only an interruption reported since the task was (last) sent ends this attempt: a
    # task sent again is sent by the pass that read the report, strictly after it came.
    interrupted = [
        r for r in rows if r.status == "interrupted" and r.received_at > attempt.dispatched_at
    ]
    if interrupted:
        why = interrupted[-1].reason or "the builder's host failed the build"
        return "interrupted", f"infrastructure: {why}"
    refused = [r for r in rows if r.status == "refused"]
    if refused:
        return "refused", refused[-1].reason
    return None


class Scheduler:
    """Runs builds to their verdict; :meth:`tick` is one pass, :meth:`run` loops it."""

    def __init__(
        self,
        engine: Engine,
        staging: Staging,
        dispatcher: Dispatcher,
        config: SchedulerConfig,
        clock: Callable[[], datetime] = utcnow,
        on_verified: Callable[[], None] | None = None,
        on_reports: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.staging = staging
        self.dispatcher = dispatcher
        self.config = config
        self.clock = clock
        self.on_verified = on_verified
        """Called when a build is decided ``verified`` (the ledger publisher's wake-up)."""
        self.on_reports = on_reports
        """Called with a decided build that needs diffoscope reports
        (:meth:`farm.coordinator.report_worker.ReportWorker.submit`)."""
        self._wake = threading.Event()
        self._listening_since: datetime | None = None
        """Since when passes have followed each other without a gap (see :meth:`_silence`)."""
        self._last_pass: datetime | None = None
        self._unsent: set[tuple[str, str]] = set()
        """(build id, builder id) of tasks the broker did not take; sent again each pass."""
        self._given_up: set[tuple[str, str]] = set()
        """(build id, builder id) whose infrastructure retries were used up (logged once)."""
        self._unsigned: set[tuple[int | None, str]] = set()
        """(attempt id, broker state) of unsigned states ignored (logged once each)."""

    def wake(self) -> None:
        """Start the next pass now (a build was requested, a result arrived)."""
        self._wake.set()

    # -- one pass ---------------------------------------------------------------------

    def tick(self) -> None:
        """Start pending builds, settle running ones; one build's error does not stop others."""
        self._note_pass(self.clock())
        if self.dispatcher.broker_reset():
            log.warning("the broker lost its queued tasks (emptied or replaced); sending again")
            self.resume()
        elif self._unsent:
            self._send_again(set(self._unsent))
        with Session(self.engine, expire_on_commit=False) as session:
            ids = session.exec(
                select(Build.id).where(
                    col(Build.managed).is_(True),
                    col(Build.status).in_(("pending", "running")),
                )
            ).all()
        for build_id in ids:
            try:
                with bind(build_id=build_id), Session(self.engine, expire_on_commit=False) as s:
                    self._advance(s, build_id)
            except FarmError as exc:
                log.error("build %s: %s", build_id, exc, extra={"build_id": build_id})

    def _note_pass(self, now: datetime) -> None:
        """Start counting builders' silence afresh after a gap between passes longer than
        half of ``lost_after`` (the coordinator was paused, restarted, or its passes
        failed): beats that could not be recorded meanwhile are not silence."""
        gap = self.config.lost_after / 2
        if self._last_pass is None or (now - self._last_pass).total_seconds() > gap:
            self._listening_since = now
        self._last_pass = now

    def resume(self) -> None:
        """Send again the tasks of every outstanding attempt (after a restart, or after
        the broker lost them)."""
        self._send_again(None)

    def _send_again(self, only: set[tuple[str, str]] | None) -> None:
        """Send the tasks of outstanding attempts again: all of them, or ``only`` these
        (build id, builder id); a task the broker still refuses is kept for the next pass."""
        with Session(self.engine, expire_on_commit=False) as session:
            attempts = session.exec(
                select(BuildAttempt).where(BuildAttempt.state == "dispatched")
            ).all()
            wanted = {(a.build_id, a.builder_id) for a in attempts}
            if only is not None:
                self._unsent -= only - wanted  # settled or replaced meanwhile
            away = False
            for attempt in attempts:
                key = (attempt.build_id, attempt.builder_id)
                if only is not None and key not in only:
                    continue
                build = session.get(Build, attempt.build_id)
                builder = session.get(Builder, attempt.builder_id)
                if build is None or builder is None or build.verdict is not None:
                    self._unsent.discard(key)
                    continue
                if away:  # one refusal per pass is enough: the rest waits for the next
                    self._unsent.add(key)
                    continue
                try:
                    recipe = parse_recipe(build.recipe, f"build {build.id}")
                except FarmError as exc:
                    log.error("build %s: cannot resend to %s: %s", build.id, builder.id[:12], exc)
                    continue
                if self._send(build, recipe, builder):
                    log.info("build %s: task resent to %s", build.id, builder.id[:12])
                else:
                    away = True

    def _advance(self, session: Session, build_id: str) -> None:
        build = service.get_build(session, build_id)
        recipe = parse_recipe(build.recipe, f"build {build.id}")
        now = self.clock()
        if build.status == "pending":
            self._start(session, build, recipe, now)
            return
        attempts = list(
            session.exec(select(BuildAttempt).where(BuildAttempt.build_id == build.id)).all()
        )
        for attempt in attempts:
            if attempt.state == "dispatched":
                self._settle(session, build, attempt, now)
        resting = False
        for attempt in list(attempts):
            if attempt.state in GIVEN_UP and attempt.replaced_by is None:
                resting |= self._follow_up(session, build, recipe, attempt, attempts, now)
        if not resting and not any(a.state == "dispatched" for a in attempts):
            self._decide(session, build.id, now)

    def _follow_up(
        self,
        session: Session,
        build: Build,
        recipe: Recipe,
        attempt: BuildAttempt,
        attempts: list[BuildAttempt],
        now: datetime,
    ) -> bool:
        """Ask ``attempt``'s builder again (interrupted; lost with no one else), or
        replace it; whether it waits out ``interruption_pause`` (the build stays open)."""
        if attempt.state == "interrupted":
            if not self._may_again(attempt):
                self._given_up_on(build, attempt)
            elif not self._rested(attempt, now):
                return True
            elif self._again(session, build, recipe, attempt, now):
                return False
        replacement = self._replace(session, build, recipe, attempt, attempts, now)
        if replacement is not None:
            attempts.append(replacement)
        elif attempt.state == "lost":  # no one else: wait for this host to be back
            if self._may_again(attempt):
                self._again(session, build, recipe, attempt, now)
            else:
                self._given_up_on(build, attempt)
        return False

    def _start(self, session: Session, build: Build, recipe: Recipe, now: datetime) -> None:
        try:
            chosen = service.pick_builders(
                session,
                build.arch,
                build.quorum,
                now,
                within_seconds=self.config.heartbeat_within,
            )
        except ConflictError as exc:
            if build.note != str(exc):
                build.note = str(exc)
                build.updated_at = now
                session.add(build)
                session.commit()
                log.warning("build %s waits: %s", build.id, exc)
            return
        build.builders = [b.id for b in chosen]
        build.status = "running"
        build.note = None
        build.updated_at = now
        session.add(build)
        for builder in chosen:
            session.add(self._attempt(build, recipe, builder, 1, now))
        session.commit()
        for builder in chosen:
            self._send(build, recipe, builder)

    def _attempt(
        self, build: Build, recipe: Recipe, builder: Builder, number: int, now: datetime
    ) -> BuildAttempt:
        wait = recipe.limits.timeout + self.config.timeout_margin
        return BuildAttempt(
            build_id=build.id,
            builder_id=builder.id,
            number=number,
            dispatched_at=now,
            deadline=now + timedelta(seconds=wait),
        )

    def _send(self, build: Build, recipe: Recipe, builder: Builder) -> bool:
        """Queue the task; whether the broker took it (if not, it is sent again each pass)."""
        key = (build.id, builder.id)
        try:
            self.dispatcher.send(recipe, build.arch, builder, build.id)
        except FarmError as exc:
            # The attempt stays dispatched and is sent again on the next passes.
            self._unsent.add(key)
            log.error("build %s: task for %s not sent: %s", build.id, builder.id[:12], exc)
            return False
        self._unsent.discard(key)
        log.info("build %s: dispatched to %s", build.id, builder.id[:12])
        return True

    def _settle(self, session: Session, build: Build, attempt: BuildAttempt, now: datetime) -> None:
        outcome = _result_state(session, attempt)
        if outcome is None:
            failure = self.dispatcher.failure(build.id, build.arch, attempt.builder_id)
            if failure is not None and (attempt.id, failure) not in self._unsigned:
                # Anyone with the broker's URL can write a FAILURE state: only a result
                # the builder signed ends an attempt; its deadline and silence still do.
                self._unsigned.add((attempt.id, failure))
                log.warning(
                    "build %s: builder %s: ignored an unsigned broker state (%s); the "
                    "attempt waits for a signed result, its deadline or its builder's silence",
                    build.id,
                    attempt.builder_id[:12],
                    failure,
                )
            if now >= attempt.deadline:
                outcome = ("timed_out", f"no result by {attempt.deadline.isoformat()}")
            else:
                silence = self._silence(session, attempt, now)
                if silence is not None:
                    outcome = ("lost", silence)
        if outcome is None:
            return
        attempt.state, attempt.reason = outcome
        attempt.finished_at = now
        session.add(attempt)
        session.commit()
        log.info(
            "build %s: builder %s %s%s",
            build.id,
            attempt.builder_id[:12],
            attempt.state,
            f": {attempt.reason}" if attempt.reason else "",
        )

    def _silence(self, session: Session, attempt: BuildAttempt, now: datetime) -> str | None:
        """Why ``attempt``'s builder counts as gone (no heartbeat for ``lost_after``), or None.

        Silence is counted from the latest of its last heartbeat, the dispatch and the
        end of this scheduler's last gap (:meth:`_note_pass`: a coordinator that was down,
        paused or failing could not record the beats sent meanwhile)."""
        builder = session.get(Builder, attempt.builder_id)
        if builder is None:
            return "the builder is no longer enrolled"
        heard = [attempt.dispatched_at, self._listening_since or now]
        if builder.last_seen is not None:
            heard.append(builder.last_seen)
        if (now - max(heard)).total_seconds() < self.config.lost_after:
            return None
        last = builder.last_seen.isoformat() if builder.last_seen is not None else "never"
        return (
            f"builder host {builder.hostname} not heard from for "
            f"{self.config.lost_after:g} s (last heartbeat: {last})"
        )

    def _may_again(self, attempt: BuildAttempt) -> bool:
        """Whether ``attempt`` has not used up its ``max_interruptions``."""
        return attempt.interruptions < self.config.max_interruptions

    def _rested(self, attempt: BuildAttempt, now: datetime) -> bool:
        """Whether ``interruption_pause`` has passed since ``attempt`` was interrupted: a
        host that failed a build because it is going down is not sent the task again
        while it still runs (it would fail it again at once, using up the bound)."""
        ended = attempt.finished_at or now
        return (now - ended).total_seconds() >= self.config.interruption_pause

    def _given_up_on(self, build: Build, attempt: BuildAttempt) -> None:
        """Log, once (not on every pass that looks again), that ``attempt`` used up its
        infrastructure retries."""
        key = (build.id, attempt.builder_id)
        if key not in self._given_up:
            self._given_up.add(key)
            log.error(
                "build %s: builder %s given up after %d infrastructure retries: %s",
                build.id,
                attempt.builder_id[:12],
                attempt.interruptions,
                attempt.reason,
            )

    def _again(
        self, session: Session, build: Build, recipe: Recipe, attempt: BuildAttempt, now: datetime
    ) -> bool:
        """Send ``attempt``'s task again to its own builder, as a fresh dispatch (a new
        deadline, silence counted from now); whether it was, i.e. whether its builder is
        still approved (the caller checked ``max_interruptions``)."""
        limit = self.config.max_interruptions
        builder = session.get(Builder, attempt.builder_id)
        if builder is None or not builder.approved:
            return False
        was = attempt.state
        attempt.interruptions += 1
        attempt.state = "dispatched"
        attempt.dispatched_at = now
        attempt.deadline = now + timedelta(
            seconds=recipe.limits.timeout + self.config.timeout_margin
        )
        attempt.finished_at = None
        session.add(attempt)
        session.commit()
        log.warning(
            "build %s: builder %s %s (%s); task sent to it again (infrastructure retry %d/%d)",
            build.id,
            attempt.builder_id[:12],
            was,
            attempt.reason,
            attempt.interruptions,
            limit,
        )
        self._send(build, recipe, builder)
        return True

    def _replace(
        self,
        session: Session,
        build: Build,
        recipe: Recipe,
        failed: BuildAttempt,
        attempts: list[BuildAttempt],
        now: datetime,
    ) -> BuildAttempt | None:
        if build.retries >= self.config.max_retries:
            return None
        active = [a for a in attempts if a.state in ("dispatched", "succeeded")]
        domains: set[str] = set()
        for a in active:
            b = session.get(Builder, a.builder_id)
            if b is not None:
                domains.add(service.domain_of(b))
        try:
            (builder,) = service.pick_builders(
                session,
                build.arch,
                1,
                now,
                within_seconds=self.config.heartbeat_within,
                exclude={a.builder_id for a in attempts},
                avoid_domains=domains,
            )
        except ConflictError as exc:
            note = f"no replacement for {failed.builder_id[:12]}: {exc}"
            if build.note != note:
                build.note = note
                session.add(build)
                session.commit()
            return None
        attempt = self._attempt(build, recipe, builder, failed.number + 1, now)
        failed.replaced_by = builder.id
        build.retries += 1
        build.builders = [*build.builders, builder.id]
        build.note = None
        build.updated_at = now
        session.add_all([attempt, failed, build])
        session.commit()
        log.warning(
            "build %s: builder %s %s; replaced by %s (retry %d/%d)",
            build.id,
            failed.builder_id[:12],
            failed.state,
            builder.id[:12],
            build.retries,
            self.config.max_retries,
        )
        self._send(build, recipe, builder)
        return attempt

    def _decide(self, session: Session, build_id: str, now: datetime) -> None:
        verdict = service.finalize(session, build_id, now, force=True)
        if verdict is None:
            return
        if verdict.status == "verified" and self.on_verified is not None:
            self.on_verified()
        if self.on_reports is not None and needs_reports(verdict.status, verdict.upstream_matches):
            self.on_reports(build_id)

    # -- the loop ---------------------------------------------------------------------

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Resume, then tick every ``interval`` seconds (or when woken) until ``stop`` is set."""
        self.resume()
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive one bad pass (a database hiccup)
                log.exception("scheduler pass failed")
                self._last_pass = None  # beats were not recorded either: count afresh
            self._wake.wait(interval)
            self._wake.clear()
