"""The consumer: ``farm pull`` and ``farm verify`` check an artifact against the ledger.

Modules in pipeline order:

- :mod:`farm.consumer.trust`    — the pinned trust root (from the genesis) and the trust
  memory (the largest verified tree);
- :mod:`farm.consumer.client`   — talk to a distribution node: releases, evidence,
  consistency proofs, and the blob streamed, hashed and cut off at its attested size;
- :mod:`farm.consumer.verify`   — pure: evidence + trust root + memory + now → a
  :class:`~farm.consumer.verify.VerifiedArtifact` or a refusal saying why;
- :mod:`farm.consumer.state`    — the memory file and the evidence saved beside a file;
- :mod:`farm.consumer.flow`     — ``pull``, ``verify_file`` and ``verify_served``, wiring
  the above;
- :mod:`farm.consumer.coverage` — pure: what the node answered per requirement → the
  ``farm coverage`` report; :mod:`farm.consumer.coverage_flow` gathers it;
- :mod:`farm.consumer.cli`      — the Typer commands; :mod:`farm.consumer.errors` — errors.
"""

__all__: list[str] = []
