"""The read-only distribution node: follows the ledger, mirrors and serves committed artifacts.

Modules in pipeline order (``api.distribution.`` omitted):

- :mod:`.settings` — :class:`DistSettings` (``farm dist serve`` options, ``FARM_DIST_*``);
- :mod:`.follower` — replicate the ledger from the validators, checking every commit
  certificate, the chain, every transaction and the co-signed checkpoints;
- :mod:`.catalog` — what a committed attest transaction offers;
- :mod:`.mirror`, :mod:`.blobs` — fetch those bytes from the coordinator's staging
  store, checked by digest, stored content-addressed;
- :mod:`.node` — :class:`DistNode` wires the above and publishes a view;
- :mod:`.artifacts`, :mod:`.simple`, :mod:`.app` — HTTP: the bytes (raw ASGI), the
  PEP 503/691 index, releases and evidence (the contract is :mod:`farm.evidence`).

To start a node programmatically: ``api.distribution.app.create_app(DistSettings(...))``
returns the ASGI app (its lifespan starts following and mirroring).
"""

__all__: list[str] = []
