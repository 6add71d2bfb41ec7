"""The broker's users: who may run which Redis command on which keys (pure).

A farm of hosts runs Redis with an ACL file (``secrets/redis/users.acl``, made by
:func:`acl_file`) instead of one shared credential:

- ``default`` (no password): ``PING`` and nothing else, for health probes;
- ``admin``: everything; its password is in Redis's own secrets only, and the operator's
  host uses it (inside the Redis container) to reload the file;
- ``coordinator``: every key and channel, every command (it schedules every builder);
- one user per builder host, named after the host (``b1`` ...), with a password of its
  own (``secrets/bN/redis-password``). Before the operator approves the builder that
  host enrolled, it may only ``PING``. Once approved it reaches only its own keys:
  its keyspace ``farm:b:<builder id>:*`` (its queue, kombu's ``unacked`` hash and
  index, its bindings, its task results: :func:`farm.queue.keyspace_of`), its heartbeat
  ``farm:builders:<id>``, its stored results ``farm:result:*:<id>`` and counters
  ``farm:completions:*:<id>``, and channels ``farm:b:<id>:*`` (its result notices); and
  only the commands a worker uses: no ``FLUSHALL``/``FLUSHDB``, ``KEYS``, ``CONFIG``,
  ``DEBUG``, ``SHUTDOWN``, ``ACL``, ``MONITOR``, ``CLIENT KILL`` (``-@dangerous``),
  no ``SCRIPT``/``FUNCTION FLUSH``. A retired builder's host is back to ``PING``.

Passwords are stored in the file as SHA-256 hashes (``#<hex>``), never in clear.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from farm.queue import keyspace_of

__all__ = ["ADMIN", "COORDINATOR", "acl_file", "builder_rules"]

ADMIN = "admin"
COORDINATOR = "coordinator"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
_ID = re.compile(r"^[0-9a-f]{16,128}$")

#: What an approved builder's worker may run (Redis command categories), less the
#: dangerous ones.
_WORKER_COMMANDS = (
    "-@all +@connection +@keyspace +@read +@write +@list +@hash +@set +@sortedset "
    "+@string +@pubsub +@transaction +@scripting +@blocking "
    "-@dangerous -@admin -script|flush -script|kill -function"
)


def _hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def builder_rules(builder_id: str | None) -> str:
    """The ACL rules (without user and password) of a builder host whose approved
    builder is ``builder_id`` (None: not approved, or retired)."""
    if builder_id is None:
        return "resetkeys resetchannels -@all +ping"
    if not _ID.fullmatch(builder_id):
        raise ValueError(f"not a builder id: {builder_id!r}")
    keys = [
        f"~{keyspace_of(builder_id)}*",
        f"~farm:builders:{builder_id}",
        f"~farm:result:*:{builder_id}",
        f"~farm:completions:*:{builder_id}",
    ]
    channels = [f"&{keyspace_of(builder_id)}*"]
    return " ".join(["resetkeys", *keys, "resetchannels", *channels, _WORKER_COMMANDS])


def acl_file(
    admin_password: str,
    coordinator_password: str,
    builders: Mapping[str, tuple[str, str | None]],
) -> str:
    """The whole ACL file: ``builders`` maps each builder host to its password and its
    approved builder id (None before approval or after retirement)."""
    lines = [
        "user default on nopass resetkeys resetchannels -@all +ping",
        f"user {ADMIN} on {_hash(admin_password)} ~* &* +@all",
        f"user {COORDINATOR} on {_hash(coordinator_password)} ~* &* +@all",
    ]
    for host, (password, builder_id) in sorted(builders.items()):
        if not _NAME.fullmatch(host) or host in (ADMIN, COORDINATOR, "default"):
            raise ValueError(f"not a builder host name: {host!r}")
        lines.append(f"user {host} on {_hash(password)} {builder_rules(builder_id)}")
    return "\n".join(lines) + "\n"
