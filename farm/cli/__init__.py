"""The ``farm`` command line."""

__all__: list[str] = []
