"""HTTP: the coordinator's REST API and the read-only distribution node."""

__all__: list[str] = []
