"""`gpttui export RUN|LOG --format csv|parquet|jsonl -o FILE [--chart FILE.txt|FILE.html]`.

One row per step (a nanoGPT `iter N:` line) and per eval (a `step N:` line), in iteration
order with a `kind` column (step|eval); an eval row carries the checkpoint path when one was
saved there. Files are written to a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write a run's steps and evals as csv, parquet or jsonl"
FORMATS = ("csv", "parquet", "jsonl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory, metrics.jsonl, or a nanoGPT train.py log")
    p.add_argument("--format", choices=FORMATS, help="default: from the -o file's extension")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the rows")
    p.add_argument("--chart", metavar="FILE", help="also save the loss chart (train + val): .html or text")
    p.add_argument("--width", type=int, default=100, help="chart width in characters (default 100)")
    p.add_argument("--height", type=int, default=30, help="chart height in lines (default 30)")


def run(args: argparse.Namespace) -> int:
    from gpttui.analysis import export
    from gpttui.commands import load_history

    if not args.output and not args.chart:
        print("error: nothing to write: give -o FILE and/or --chart FILE", file=sys.stderr)
        return 2
    fmt = args.format
    if args.output and fmt is None:
        fmt = Path(args.output).suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            print(f"error: -o {args.output}: cannot tell the format from the extension; "
                  f"give --format {'|'.join(FORMATS)}", file=sys.stderr)
            return 2
    for path in (args.output, args.chart):
        if path and not Path(path).resolve().parent.is_dir():
            print(f"error: {path}: its directory does not exist", file=sys.stderr)
            return 2
    if args.width < 20 or args.height < 5:
        print("error: --width must be >= 20 and --height >= 5", file=sys.stderr)
        return 2
    history = load_history(args.run)
    if history is None:
        return 2
    if args.output:
        n = export.write_rows(history, args.output, fmt)
        print(f"{args.output}: {n} rows ({sum(1 for _ in history.steps)} steps, {len(history.evals)} evals)")
    if args.chart:
        export.write_chart(history, args.chart, args.width, args.height)
        print(f"{args.chart}: loss chart")
    return 0
