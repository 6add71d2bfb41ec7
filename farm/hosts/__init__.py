"""A farm of hosts: one container per host on private Docker networks (``farm cluster``).

Not :mod:`farm.cluster` (the loopback cluster ``farm up`` runs). Here every part of a
farm is its own host with its own hostname, address and volumes, all from the one image
``farm-host:bookworm`` (``deploy/host-image``), wired by ``deploy/cluster/docker-compose.yml``:

- :mod:`farm.hosts.init`: the cluster directory, made once (keys, genesis, secrets, the
  compose environment), reused by every later ``up``;
- :mod:`farm.hosts.compose`: ``docker-compose`` for one project, with clear errors;
- :mod:`farm.hosts.operate`: what ``farm cluster up``, ``add-builder`` and
  ``retire-builder`` do as the operator (tokens, approval, retirement).
"""

__all__: list[str] = []
