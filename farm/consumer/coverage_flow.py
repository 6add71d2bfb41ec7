"""``farm coverage``'s I/O: ask the node about each requirement, verify, read upstream.

For each pinned requirement, in order: skip it when its marker is false for this
Python (``not-needed``); else verify what the node serves exactly as ``farm pull``
would (:func:`farm.consumer.flow.verify_served`: the genesis is the only trust root,
the bytes are downloaded and hashed); then, for what verified, read the upstream
index's listing of the release (PEP 691, :class:`farm.infer.pypi.SimpleIndex`) so
:mod:`farm.consumer.coverage` can tell whether the farm's artifact is upstream's file.

One requirement's failure is its row's, never the command's: only a missing trust root
or node (ConfigError from :class:`~farm.consumer.flow.Options`) stops the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from farm.consumer.coverage import Observation, UpstreamListing
from farm.consumer.errors import NodeError, RefusedError
from farm.consumer.flow import Options, verify_served
from farm.errors import ConfigError
from farm.infer.errors import InferError
from farm.infer.pypi import SimpleIndex
from farm.requirements import Pinned

__all__ = ["DEFAULT_UPSTREAM", "observe"]

DEFAULT_UPSTREAM = "https://pypi.org"


def _no_download(url: str, sha256: str, label: str, size: int | None) -> Path:
    raise InferError(f"{label}: coverage reads listings only, it downloads nothing upstream")


@contextmanager
def _upstream(
    base_url: str | None, timeout: float
) -> Iterator[Callable[[Pinned], UpstreamListing] | None]:
    if base_url is None:
        yield None
        return
    with httpx.Client(timeout=timeout) as http:
        index = SimpleIndex(http, base_url, _no_download)

        def listing(pin: Pinned) -> UpstreamListing:
            try:
                files = index.project(pin.name).release(pin.version)
            except InferError as exc:
                return UpstreamListing(None, str(exc))
            return UpstreamListing({f.filename: f.sha256 for f in files})

        yield listing


def observe(
    pins: Sequence[Pinned],
    opts: Options,
    *,
    arch: str | None = None,
    upstream: str | None = DEFAULT_UPSTREAM,
    timeout: float = 30.0,
    progress: Callable[[str], None] | None = None,
) -> list[Observation]:
    """One :class:`Observation` per pin, in order (``upstream``: None to skip that check).

    Raises ConfigError when there is no trust root or no node to ask.
    """
    say = progress or (lambda _m: None)
    opts.trust()  # no genesis: stop here, before asking anything
    found: list[Observation] = []
    with opts.client(timeout=timeout) as client, _upstream(upstream, timeout) as listing:
        for pin in pins:
            if pin.marker is not None and not pin.marker.evaluate():
                found.append(Observation(pin, "not-needed"))
                continue
            say(pin.spec)
            try:
                verified = verify_served(client, pin.name, pin.version, arch, opts)
            except RefusedError as exc:
                found.append(Observation(pin, "refused", message=str(exc)))
                continue
            except (NodeError, ConfigError) as exc:
                found.append(Observation(pin, "absent", message=str(exc)))
                continue
            found.append(
                Observation(
                    pin,
                    "verified",
                    tuple(verified),
                    upstream=listing(pin) if listing is not None else None,
                )
            )
    return found
