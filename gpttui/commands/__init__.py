"""One module per `gpttui` subcommand (see gpttui/cli.py), and what several of them share."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpttui.run.history import RunHistory


def load_history(source: str) -> RunHistory | None:
    """A run's history (run dir, metrics.jsonl or nanoGPT log), or None once its one error line is said."""
    from gpttui.run.history import RunLogError, load_run

    try:
        return load_run(source)
    except RunLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
