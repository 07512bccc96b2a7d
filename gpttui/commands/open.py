"""`gpttui open RUN_DIR|LOG [RUN_DIR|LOG ...] [--by iter|tokens]`: read-only views.

One source opens in the dashboard; several open on the compare screen (their val loss on
one chart, each in its own colour). A run whose engine is still running is followed live.
Paths are checked here, in one line each, before the UI starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpttui.run import layout

HELP = "open runs or nanoGPT logs read-only in the dashboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN_DIR|LOG",
                   help="run directories, metrics.jsonl files or nanoGPT train.py logs")
    p.add_argument("--by", choices=("iter", "tokens"), default="iter",
                   help="x axis of the val-loss overlay (several runs): iteration or tokens seen")


def check(path: Path) -> str | None:
    """Why `path` can't be opened, or None."""
    if not path.exists():
        return f"{path}: no such run directory or log file"
    if path.is_dir():
        if not (path / layout.METRICS).is_file() and not (path / layout.CONFIG).is_file():
            return f"{path}: not a run directory (no metrics.jsonl or config.toml)"
        return None
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"{path}: cannot read: {e.strerror or e}"
    return None


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths]
    problems = [msg for msg in map(check, paths) if msg]
    if problems:
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        return 2
    from gpttui.app import GpttuiApp  # Textual only once the paths hold
    from gpttui.viewer import ReadOnlyRuns

    app = GpttuiApp(ReadOnlyRuns(paths, axis=args.by))
    result = app.run()
    return app.return_code or int(result or 0)  # 1 after an exception (Textual printed it)
