"""One module per `gpttui` subcommand (see gpttui/cli.py), and what several of them share."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpttui.app import GpttuiApp
    from gpttui.run.history import RunHistory

# Exit codes the commands share (README "Exit codes"). A run's engine killed by signal N makes
# `gpttui train` exit 128 + N, as a shell reports a killed command (137 for SIGKILL).
EXIT_FAILED = 1       # the work failed after it started, said in one "error:" line
EXIT_BAD_INPUT = 2    # usage, config, data or run directory refused before anything started
EXIT_LOCKED = 3       # an engine already trains in that run directory
EXIT_SIGNAL_BASE = 128
EXIT_INTERRUPTED = 130


def load_history(source: str) -> RunHistory | None:
    """A run's history (run dir, metrics.jsonl or nanoGPT log), or None once its one error line is said."""
    from gpttui.run.history import RunLogError, load_run

    try:
        return load_run(source)
    except RunLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def run_app(app: GpttuiApp) -> int:
    """Run the dashboard; its exit code (1 after an exception, which Textual has printed)."""
    code = app.run()
    farewell = getattr(app.controller, "farewell", "")
    if app.return_code and farewell:   # the dashboard failed, or the stop it was asked for: why, and where the engine is
        print(farewell, file=sys.stderr)
    return app.return_code or int(code or 0)
