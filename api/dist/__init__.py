"""The read-only distribution node: follows the ledger, mirrors and serves committed artifacts.

Modules in pipeline order:

- :mod:`api.dist.settings`  — :class:`DistSettings` (``farm dist serve`` options, ``FARM_DIST_*``);
- :mod:`api.dist.follower`  — replicate the ledger from the validators, checking every
  commit certificate, the chain, every transaction and the co-signed checkpoints;
- :mod:`api.dist.catalog`   — what a committed attest transaction offers;
- :mod:`api.dist.mirror`, :mod:`api.dist.blobs` — fetch those bytes from the
  coordinator's staging store, checked by digest, stored content-addressed;
- :mod:`api.dist.node`      — :class:`DistNode` wires the above and publishes a view;
- :mod:`api.dist.artifacts`, :mod:`api.dist.simple`, :mod:`api.dist.app` — HTTP: the
  bytes (raw ASGI), the PEP 503/691 index, releases and evidence (:mod:`api.dist.models`).

To start a node programmatically: ``api.dist.app.create_app(DistSettings(...))`` returns
the ASGI app (its lifespan starts following and mirroring); see :mod:`api.dist.app`.
"""

__all__: list[str] = []
