"""Process set-up of one validator: the directory lock, the garbage collector, and
:func:`serve`, which runs a :class:`ledger.node.Node` and its HTTP API until SIGTERM or
SIGINT (``farm ledger run``).

Invariants: at most one validator process runs from a directory (an exclusive lock
held for the process's life); the node is closed, and the lock released, however
:func:`serve` ends.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import IO

from farm.errors import ConfigError
from ledger.network import split_hostport
from ledger.node import Node
from ledger.settings import NodeSettings

__all__ = ["GC_THRESHOLDS", "serve", "split_hostport"]

log = logging.getLogger(__name__)


def _lock_dir(path: Path) -> IO[bytes]:
    """Hold an exclusive lock on the validator's directory for the process's life.

    Raises:
        ConfigError: another process already runs a validator from ``path``.
    """
    import fcntl

    handle = (path / "lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(f"{path}: another validator process is running from here") from None
    return handle


GC_THRESHOLDS = (50_000, 20, 100)
"""Cyclic garbage collector thresholds of a validator process (CPython's are 700, 10,
10): checking a transaction allocates hundreds of short-lived containers (parsed JSON,
pydantic models), so at the defaults a young collection runs every transaction or
two and the collector took about 8% of the CPU of validation; these thresholds make
it a few percent. Little that the hot path allocates is cyclic, so memory is not held
noticeably longer."""


def _tune_gc() -> None:
    """Move what start-up built (the replayed state) out of the collector's sight and
    collect less often (:data:`GC_THRESHOLDS`)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: NodeSettings) -> None:
    """Run one validator until SIGTERM or SIGINT, then shut down cleanly.

    Raises:
        ConfigError / SigningKeyError: a missing key, a genesis that does not name it,
            a store of another genesis, an address in use.
    """
    import signal

    from farm.keys import load_key
    from ledger.genesis import load_genesis
    from ledger.http import HttpServer
    from ledger.prometheus import validator_registry

    genesis = load_genesis(settings.genesis)
    if not settings.key_path.exists():
        raise ConfigError(
            f"{settings.key_path}: no validator key there (make one with `farm ledger init`)"
        )
    lock = _lock_dir(settings.dir)
    node = Node(settings, genesis, load_key(settings.key_path))
    _tune_gc()
    node.metrics.watch_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http: HttpServer | None = None
    try:
        host, port = node.settings.listen(node.info.http)
        http = HttpServer(node, host, port, validator_registry(node))
        await node.start()
        http.start()
        log.info("%s: p2p %s, http %s", node.name, node.info.p2p, node.info.http)
        await stop.wait()
        log.info("%s: shutting down at height %d", node.name, node.height)
    finally:
        if http is not None:
            await http.close()
        await node.close()
        lock.close()
