"""The consumer: ``farm pull`` and ``farm verify`` check an artifact against the ledger.

Modules in pipeline order:

- :mod:`api.consumer.trust`    — the pinned trust root (from the genesis) and the trust
  memory (the largest verified tree);
- :mod:`api.consumer.client`   — talk to a distribution node: releases, evidence,
  consistency proofs, and the blob streamed, hashed and cut off at its attested size;
- :mod:`api.consumer.verify`   — pure: evidence + trust root + memory + now → a
  :class:`~api.consumer.verify.VerifiedArtifact` or a refusal saying why;
- :mod:`api.consumer.state`    — the memory file and the evidence saved beside a file;
- :mod:`api.consumer.flow`     — ``pull`` and ``verify_file``, wiring the above;
- :mod:`api.consumer.cli`      — the Typer commands; :mod:`api.consumer.errors` — errors.
"""

__all__: list[str] = []
