"""The read-only distribution node: follows the ledger, mirrors and serves committed artifacts.

Modules in pipeline order:

- :mod:`api.distribution.settings`  — :class:`DistSettings` (``farm dist serve`` options, ``FARM_DIST_*``);
- :mod:`api.distribution.follower`  — replicate the ledger from the validators, checking every
  commit certificate, the chain, every transaction and the co-signed checkpoints;
- :mod:`api.distribution.catalog`   — what a committed attest transaction offers;
- :mod:`api.distribution.mirror`, :mod:`api.distribution.blobs` — fetch those bytes from the
  coordinator's staging store, checked by digest, stored content-addressed;
- :mod:`api.distribution.node`      — :class:`DistNode` wires the above and publishes a view;
- :mod:`api.distribution.artifacts`, :mod:`api.distribution.simple`, :mod:`api.distribution.app` — HTTP: the
  bytes (raw ASGI), the PEP 503/691 index, releases and evidence (:mod:`farm.evidence`).

To start a node programmatically: ``api.distribution.app.create_app(DistSettings(...))`` returns
the ASGI app (its lifespan starts following and mirroring); see :mod:`api.distribution.app`.
"""

__all__: list[str] = []
