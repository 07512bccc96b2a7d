"""`gpttui export RUN|LOG [RUN ...] [--format csv|parquet|jsonl|tensorboard -o FILE|DIR] [--chart FILE]`.

Rows: one per step (a nanoGPT `iter N:` line) and per eval (a `step N:` line), in iteration
order with a `kind` column (step|eval), tokens and tokens/s filled in where tokens per iteration
is known, mfu as a fraction of the peak named in `mfu_peak_flops`, a `checkpointed` flag; parquet
also carries the run's config as metadata (gpttui.analysis.export). `--format tensorboard`
writes event files into the -o directory (one subdirectory per run when given several), all
or none: a failure leaves no file or directory it made.
`--chart` draws a picture (.png, .svg, .pdf: four panels, runs overlaid; matplotlib) or the
terminal chart (.txt, .html). Files are written to a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from gpttui.commands import EXIT_BAD_INPUT, load_history
from gpttui.fs import dirs

if TYPE_CHECKING:
    from gpttui.run.history import RunHistory

HELP = "write a run's steps and evals as csv, parquet, jsonl or TensorBoard events, and its charts"
FORMATS = ("csv", "parquet", "jsonl", "tensorboard")
TEXT_CHARTS = (".txt", ".html")
IMAGE_CHARTS = (".png", ".svg", ".pdf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="+", help="run directory, metrics.jsonl, or a nanoGPT train.py log "
                                          "(several: charts overlaid, TensorBoard one subdirectory each)")
    p.add_argument("--format", choices=FORMATS, help="default: from the -o file's extension")
    p.add_argument("-o", "--output", metavar="FILE|DIR", help="where to write the rows (a directory for tensorboard)")
    p.add_argument("--chart", metavar="FILE", help="also draw the charts: .png, .svg or .pdf (train/val loss, lr, "
                                                   "ms/iter, MFU; needs gpttui[plots]), or the terminal loss chart "
                                                   "as .txt or .html")
    p.add_argument("--smoothing", type=float, default=0.6,
                   help="picture charts: EMA smoothing of the train loss per logged point, 0..<1 (default 0.6)")
    p.add_argument("--width", type=int, default=100, help="text chart width in characters (default 100)")
    p.add_argument("--height", type=int, default=30, help="text chart height in lines (default 30)")


@contextmanager
def _naming(path: str | Path) -> Iterator[None]:
    """An OSError while writing `path` (a full disk says no file name) goes on to the command line's
    handler with the path, which it says in its one line."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _request_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the request, before anything is read or written."""
    if not args.output and not args.chart:
        return "nothing to write: give -o FILE and/or --chart FILE"
    if args.output and args.format is None:
        fmt = Path(args.output).suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            return (f"-o {args.output}: cannot tell the format from the extension; "
                    f"give --format {'|'.join(FORMATS)}")
        args.format = fmt
    if args.output and args.format != "tensorboard" and len(args.run) > 1:
        return f"-o {args.output}: {args.format} holds one run; give one run (several work with --chart and tensorboard)"
    if args.output and args.format == "tensorboard" and Path(args.output).exists() and not Path(args.output).is_dir():
        return f"-o {args.output}: tensorboard writes event files into a directory, and this is a file"
    if args.output and args.format == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        return "--format tensorboard needs the tensorboard package: pip install 'gpttui[tensorboard]'"
    if args.chart:
        suffix = Path(args.chart).suffix.lower()
        if suffix not in TEXT_CHARTS + IMAGE_CHARTS:
            return (f"--chart {args.chart}: unknown chart type {suffix or '(no extension)'!r}; "
                    f"give .png, .svg or .pdf (a picture) or .txt or .html (the terminal chart)")
        if suffix in IMAGE_CHARTS and importlib.util.find_spec("matplotlib") is None:
            return (f"--chart {args.chart}: drawing a picture needs matplotlib: pip install 'gpttui[plots]' "
                    f"(or give a .txt or .html chart)")
        if suffix in TEXT_CHARTS and len(args.run) > 1:
            return f"--chart {args.chart}: the terminal chart draws one run; give .png, .svg or .pdf to overlay several"
    for path in (args.output, args.chart):
        if path and not Path(path).resolve().parent.is_dir():
            return f"{path}: its directory does not exist"
    files = (args.chart, args.output if args.format != "tensorboard" else None)
    for path in files:   # the rename over it would fail, naming our temporary file
        if path and Path(path).is_dir():
            return f"{path}: is a directory, expected a file path"
    if args.width < 20 or args.height < 5:
        return "--width must be >= 20 and --height >= 5"
    if not 0.0 <= args.smoothing < 1.0:
        return f"--smoothing must be in [0, 1), got {args.smoothing}"
    return None


def _write_tensorboard(histories: list[RunHistory], logdirs: list[Path]) -> list[str]:
    """Each history's event file in its logdir, all or nothing: a failure (a full disk) removes
    the files written and the directories made for them (one that was there stays), then
    raises. What was written, a line each."""
    from gpttui.analysis import tensorboard_export

    made = [dirs.missing(d) for d in logdirs]
    written: list[Path] = []
    said: list[str] = []
    try:
        for h, logdir in zip(histories, logdirs):
            with _naming(logdir):
                path, n = tensorboard_export.write_history(h, logdir)
            written.append(path)
            said.append(f"{path}: {n} scalars ({len(h.steps)} steps, {len(h.evals)} evals)")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for m in reversed(made):   # a later run's directory first: an earlier's may hold it
            dirs.remove_empty(m)
        raise
    return said


def run(args: argparse.Namespace) -> int:
    from gpttui.analysis import export

    if problem := _request_error(args):
        return _error(problem)
    histories = []
    for source in args.run:
        h = load_history(source)
        if h is None:
            return EXIT_BAD_INPUT
        histories.append(h)
    if args.output and args.format == "tensorboard":
        from gpttui.analysis import chart_image

        names = [chart_image.run_label(h) for h in histories]
        if len(set(names)) < len(names):
            names = [f"{i}-{name}" for i, name in enumerate(names)]
        logdirs = [Path(args.output) / name if len(histories) > 1 else Path(args.output) for name in names]
        for logdir in logdirs:   # a second file of the same run would draw every point twice
            if any(logdir.glob("*tfevents*")):
                return _error(f"{logdir}: already holds TensorBoard event files; give an empty or new directory")
        print("\n".join(_write_tensorboard(histories, logdirs)))
    elif args.output:
        h = histories[0]
        with _naming(args.output):
            n = export.write_rows(h, args.output, args.format)
        print(f"{args.output}: {n} rows ({len(h.steps)} steps, {len(h.evals)} evals); {export.mfu_note(h)}")
    if args.chart and Path(args.chart).suffix.lower() in IMAGE_CHARTS:
        from gpttui.analysis import chart_image

        with _naming(args.chart):
            chart_image.write_chart_image(histories, args.chart, args.smoothing)
        print(f"{args.chart}: {', '.join(chart_image.PANELS)}" + (f"; {len(histories)} runs" if len(histories) > 1 else ""))
    elif args.chart:
        with _naming(args.chart):
            export.write_chart(histories[0], args.chart, args.width, args.height)
        print(f"{args.chart}: loss chart")
    return 0
