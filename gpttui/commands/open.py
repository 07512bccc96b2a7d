"""`gpttui open RUN_DIR|LOG [RUN_DIR|LOG ...] [--by iter|tokens] [--config FILE ...]`: read-only views.

One source opens in the dashboard; several open on the compare screen (their val loss on
one chart, each in its own colour). A run whose engine is still running is followed live.
Paths are checked here, in one line each, before the UI starts. Each `--config FILE` goes with
the next log file (not a run directory or metrics.jsonl, which carry their config) in the order
given: a log without a config header then has its tokens, parameters and schedule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpttui.commands import EXIT_BAD_INPUT, run_app
from gpttui.run import layout, nanogpt_log

HELP = "open runs or nanoGPT logs read-only in the dashboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN_DIR|LOG",
                   help="run directories, metrics.jsonl files or nanoGPT train.py logs")
    p.add_argument("--by", choices=("iter", "tokens"), default="iter",
                   help="x axis of the val-loss overlay (several runs): iteration or tokens seen")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="the config a log ran with, for logs without a config header; one per log, in order")


def is_log(path: Path) -> bool:
    """A nanoGPT log file (not a run directory or a metrics.jsonl): what --config goes with."""
    return path.is_file() and path.suffix != ".jsonl"


def pair_configs(paths: list[Path], configs: list[str]) -> tuple[dict[Path, Path], str | None]:
    """Each --config with the next log, in order; or why they don't pair."""
    logs = [p for p in paths if is_log(p)]
    if len(configs) > len(logs):
        return {}, (f"--config: {len(configs)} config(s) given for {len(logs)} log file(s) "
                    "(one per log, in the order of the logs; run directories carry their own)")
    out = {}
    for log, cfg in zip(logs, configs):
        if not Path(cfg).is_file():
            return {}, f"--config: {cfg}: no such config file"
        out[log] = Path(cfg)
    return out, None


def check(path: Path) -> str | None:
    """Why `path` can't be opened, or None."""
    if not path.exists():
        return f"{path}: no such run directory or log file"
    if path.is_dir():
        if not (path / layout.METRICS).is_file() and not (path / layout.CONFIG).is_file():
            return f"{path}: not a run directory (no metrics.jsonl or config.toml)"
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        return f"{path}: cannot read: {e.strerror or e}"
    if not nanogpt_log.is_text(head):
        return f"{path}: binary data, not a log: expected a nanoGPT log, a metrics.jsonl or a run directory"
    return None


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths]
    problems = [msg for msg in map(check, paths) if msg]
    if problems:
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configs, problem = pair_configs(paths, args.config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from gpttui.app import GpttuiApp  # Textual only once the paths hold
    from gpttui.viewer import ReadOnlyRuns

    return run_app(GpttuiApp(ReadOnlyRuns(paths, axis=args.by, configs=configs)))
