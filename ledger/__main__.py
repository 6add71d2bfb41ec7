"""``python -m ledger``: the ``farm ledger`` commands without loading every other
command group of ``farm`` first (a validator starts in a fraction of the time).

Same Typer app, same error mapping and exit statuses as ``farm ledger``.
"""

from __future__ import annotations

import sys

from farm.cli._errors import run_cli
from ledger.cli import app

if __name__ == "__main__":
    sys.exit(run_cli(app))
