"""The coordinator process's runtime: its settings, database, staging store and the
background services it owns (report worker, scheduler, ledger publisher, recipe
follower), started and stopped with the app's lifespan. Routes reach it through
:func:`api.coordinator.deps.runtime` and only wake services; they never own them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from farm.coordinator.ledger_client import LedgerClient, LedgerPublisher, LedgerTrust
from farm.coordinator.operator_txs import OperatorTrust
from farm.coordinator.recipes_repo import RecipeFollower
from farm.coordinator.replay import ReplayGuard
from farm.coordinator.report_worker import ReportWorker
from farm.coordinator.scheduler import Scheduler, SchedulerConfig
from farm.coordinator.settings import CoordinatorSettings
from farm.coordinator.staging import Staging
from farm.diffoscope import DiffoscopeLimits
from farm.errors import ConfigError
from farm.genesis import Genesis, load_genesis
from farm.keys import load_key

__all__ = ["Runtime", "lifespan", "make_runtime", "result_arrived"]


@dataclass
class Runtime:
    """One coordinator process: what its routes read and the services it runs."""

    settings: CoordinatorSettings
    engine: Engine
    staging: Staging
    replay: ReplayGuard
    clock: Callable[[], datetime]
    reports: ReportWorker
    follower: RecipeFollower | None = None
    publisher: LedgerPublisher | None = None
    scheduler: Scheduler | None = None
    ledger: LedgerClient | None = None
    """Reads of the validators (checkpoint, proofs, status), when a ledger is set."""
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


def make_runtime(
    settings: CoordinatorSettings, engine: Engine, clock: Callable[[], datetime]
) -> Runtime:
    """The runtime for ``settings``; services start only with the app's lifespan."""
    staging = Staging(settings.staging_dir)
    limits = DiffoscopeLimits(timeout=settings.diffoscope_timeout)
    worker = ReportWorker(engine, staging, settings.reports_dir, limits)
    state = Runtime(settings, engine, staging, ReplayGuard(engine), clock, worker)
    if settings.recipes_repo:
        state.follower = RecipeFollower(
            engine,
            settings.recipes_repo,
            settings.recipes_checkout,
            branch=settings.recipes_branch,
            interval=settings.recipes_poll,
        )
    if settings.ledger_urls:
        state.publisher = make_publisher(state)
        state.ledger = LedgerClient(state.publisher.client.urls, state.publisher.client.trust)
    return state


def make_publisher(state: Runtime) -> LedgerPublisher:
    """The ledger publisher, with the coordinator key the settings name and the genesis
    operators whose transactions it relays (it holds no operator key, ADR 34)."""
    settings = state.settings
    if settings.coordinator_key is None:
        raise ConfigError("--ledger needs --coordinator-key")
    if settings.ledger_chain is None:
        raise ConfigError("--ledger needs --ledger-chain (the chain_id of the ledger's genesis)")
    if settings.genesis is None:
        raise ConfigError("--ledger needs --genesis (receipts are checked against its validators)")
    genesis = load_genesis(settings.genesis, Genesis)
    if genesis.chain_id != settings.ledger_chain:
        raise ConfigError(
            f"--genesis is for chain {genesis.chain_id!r}, --ledger-chain says "
            f"{settings.ledger_chain!r}"
        )
    urls = [u.strip() for u in (settings.ledger_urls or "").split(",") if u.strip()]
    return LedgerPublisher(
        state.engine,
        LedgerClient(urls, LedgerTrust.from_genesis(genesis)),
        load_key(settings.coordinator_key),
        OperatorTrust(genesis.operator_keys(), settings.ledger_chain),
        state.clock,
    )


def start_background(state: Runtime) -> None:
    """The report worker, the scheduler (with a broker), the ledger publisher (with
    validators) and the recipe follower (with a repository)."""
    settings = state.settings
    state.threads.append(
        threading.Thread(
            target=state.reports.run, args=(state.stop,), name="farm-reports", daemon=True
        )
    )
    if settings.redis_url:
        from farm.coordinator.celery_dispatch import CeleryDispatcher

        if settings.coordinator_key is None:
            raise ConfigError(
                "a scheduler (redis_url) needs the coordinator key: it signs every build "
                "task with it, and builders run no other (ADR 41)"
            )

        config = SchedulerConfig(
            timeout_margin=settings.timeout_margin,
            max_retries=settings.max_retries,
            max_interruptions=settings.max_interruptions,
            interruption_pause=settings.interruption_pause,
            heartbeat_within=settings.heartbeat_within,
            lost_after=settings.builder_lost_after,
        )
        scheduler = state.scheduler = Scheduler(
            state.engine,
            state.staging,
            CeleryDispatcher(
                settings.redis_url,
                load_key(settings.coordinator_key),
                builder_keyspaces=settings.builder_keyspaces,
            ),
            config,
            state.clock,
            on_verified=state.publisher.wake if state.publisher is not None else None,
            on_reports=state.reports.submit,
        )
        state.threads.append(
            threading.Thread(
                target=scheduler.run,
                args=(state.stop, settings.schedule_interval),
                name="farm-scheduler",
                daemon=True,
            )
        )
    if state.publisher is not None:
        state.threads.append(
            threading.Thread(
                target=state.publisher.run,
                args=(state.stop, settings.ledger_interval),
                name="farm-ledger",
                daemon=True,
            )
        )
    if state.follower is not None:
        state.threads.append(
            threading.Thread(
                target=state.follower.run, args=(state.stop,), name="farm-recipes", daemon=True
            )
        )
    for thread in state.threads:
        thread.start()


def stop_background(state: Runtime) -> None:
    state.stop.set()
    if state.follower is not None:
        state.follower.wake()
    if state.publisher is not None:
        state.publisher.wake()
    if state.scheduler is not None:
        state.scheduler.wake()
    for thread in state.threads:
        thread.join(timeout=10)
    if state.ledger is not None:
        state.ledger.close()


@asynccontextmanager
async def lifespan(state: Runtime, _: FastAPI) -> AsyncIterator[None]:
    start_background(state)
    try:
        yield
    finally:
        stop_background(state)


def result_arrived(state: Runtime, build_status: str) -> None:
    """A result was recorded: the scheduler settles it now, the publisher attests now."""
    if state.scheduler is not None:
        state.scheduler.wake()
    if build_status == "verified" and state.publisher is not None:
        state.publisher.wake()
