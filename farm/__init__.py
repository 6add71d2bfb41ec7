"""farm's shared core: recipes, domain types, keys and signing, quorum rules, the CLI.

Read in pipeline order: :mod:`farm.recipe` → :mod:`farm.task` → :mod:`farm.result`
→ :mod:`farm.agreement`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
