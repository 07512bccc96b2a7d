"""`gpttui prepare SOURCE... --out DIR`: parquet, text and JSON lines into train.bin / val.bin.

The work is gpttui.data.prepare (no torch); this module parses flags and shows progress:
a rich bar on a terminal, a plain line every few seconds otherwise (logs, pipes).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, NoReturn

from gpttui.commands import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SIGNAL_BASE
from gpttui.data import prepare as P
from gpttui.run.units import human_duration

if TYPE_CHECKING:
    from rich.console import Console

HELP = "tokenize parquet / text / jsonl into train.bin and val.bin"
PLAIN_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """examples:
  gpttui prepare fineweb/data/CC-MAIN-2013-20/000_00000.parquet --out data/fineweb
  gpttui prepare 'fineweb/**/*.parquet' notes.txt --out data/mix --val-fraction 0.005
  gpttui prepare input.txt --out data/shakespeare
  gpttui prepare input.txt --tokenizer char --out data/shakespeare_char

gpt2 appends <|endoftext|> (50256) after every document; the val split is by documents
(every 1/val-fraction-th document, or the last --val-docs N). One text (a single .txt file
that is one document) is split by characters instead, as nanoGPT's shakespeare: the first 90%
train, the last 10% val. char writes nanoGPT's meta.pkl and splits the concatenated text the
same way. A val.bin under 1,024 tokens (one GPT-2 block) is warned about.

exit codes: 0 done; 1 the work failed (a write, a worker); 2 refused input (a missing or
unreadable source, bad text, bad options); 130 / 128 + N interrupted."""
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="parquet, .txt or .jsonl files, directories (searched recursively) or globs "
                        "('**' for any depth; quote them)")
    p.add_argument("--out", required=True, help="output directory (train.bin, val.bin, meta.json)")
    p.add_argument("--tokenizer", choices=["gpt2", "char"], default="gpt2",
                   help="gpt2: GPT-2 BPE (bundled, offline); char: nanoGPT's character vocabulary")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, default=None,
                       help="share held out for validation (default 0.0005 of the documents; 0.1 of "
                            "the characters for char or one text)")
    split.add_argument("--val-docs", type=int, default=None, help="hold out the last N documents instead")
    p.add_argument("--text-column", default="text",
                   help="parquet column / jsonl field holding the text (default: text)")
    p.add_argument("--workers", type=int, default=None,
                   help="tokenizing processes (default: all cores)")
    p.add_argument("--split-blank-lines", action="store_true",
                   help="a .txt file's paragraphs (separated by blank lines) are documents, "
                        "instead of one document per file")
    p.add_argument("--errors", choices=["strict", "replace"], default="strict",
                   help="invalid UTF-8 in text files: stop with its byte offset, or replace with U+FFFD")
    p.add_argument("--force", action="store_true",
                   help="redo even if meta.json says the output is up to date; replace a train.bin / val.bin "
                        "/ meta.pkl that gpttui prepare did not make (nanoGPT's)")


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl+C, so the .partial files and workers go."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _terminate_as_exception() -> Iterator[None]:
    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated(signum)

    old = {sig: signal.signal(sig, raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _end(message: str, code: int) -> NoReturn:
    """Say why and exit now: the workers are gone and the partial files removed. A normal exit
    would first join the worker pool's manager thread, which can wait for good on a pool whose
    workers were terminated mid-task (CI saw a SIGTERM'd prepare hang there)."""
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(args: argparse.Namespace) -> int:
    show = _RichProgress() if sys.stdout.isatty() else _PlainProgress()
    try:
        with _terminate_as_exception(), show:
            result = P.prepare(
                args.sources, args.out, tokenizer=args.tokenizer, val_fraction=args.val_fraction,
                val_docs=args.val_docs, text_column=args.text_column, workers=args.workers,
                split_blank_lines=args.split_blank_lines, errors=args.errors, force=args.force,
                progress=show.update)
    except P.PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED if isinstance(e, P.PrepareFailed) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _end(f"interrupted: nothing written to {args.out}", EXIT_INTERRUPTED)
    except Terminated as e:
        _end(f"{signal.Signals(e.signum).name}: stopped, nothing written to {args.out}", EXIT_SIGNAL_BASE + e.signum)
    meta = result.meta
    if result.up_to_date:
        n = len(meta["sources"])
        print(f"{args.out} is up to date: meta.json matches {'this source' if n == 1 else f'these {n} sources'} "
              "and the options; nothing to do (--force to redo)")
    else:
        print(summary(meta, args.out))
        for note in result.notes:
            print(f"note: {note}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def summary(meta: dict, out: str) -> str:
    tok, docs = meta["tokens"], meta["documents"]
    per_split = (f" ({docs['train']:,} / {docs['val']:,} documents)" if "train" in docs else "")
    lines = [
        f"wrote {out}: train.bin {P.counted(tok['train'], 'token')}, val.bin {P.counted(tok['val'], 'token')}"
        f"{per_split}, {meta['dtype']}, {meta['tokenizer']} vocab {meta['vocab_size']:,}",
        f"{P.counted(docs['total'], 'document')} from {P.counted(len(meta['sources']), 'source')}"
        + (f", {P.counted(docs['skipped_empty'], 'null or empty text')} skipped" if docs["skipped_empty"] else ""),
    ]
    secs = max(meta["seconds"], 1e-9)
    total = tok["train"] + tok["val"]
    lines.append(f"{meta['text_bytes'] / 1e6:,.1f} MB of text in {meta['seconds']:.1f} s: "
                 f"{meta['text_bytes'] / 1e6 / secs:.1f} MB/s, {total / secs / 1e6:.2f}M tokens/s, "
                 f"{P.counted(meta['workers'], 'worker')}")
    return "\n".join(lines)


class _PlainProgress:
    """A line every PLAIN_EVERY seconds, for logs and pipes."""

    def __init__(self) -> None:
        self.last = time.time()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, p: P.ProgressInfo) -> None:
        now = time.time()
        if p.phase == "done" or now - self.last < PLAIN_EVERY:
            return
        self.last = now
        eta = f", ETA {human_duration(p.eta_s)}" if p.eta_s is not None else ""
        what = "scanning characters" if p.phase == "scan" else "tokenizing"
        print(f"{what}: {p.fraction:.0%}, {P.counted(p.documents, 'document')}, {P.counted(p.tokens, 'token')}, "
              f"{p.text_bytes / 1e6:,.1f} MB, {p.mb_per_s:.1f} MB/s{eta}", flush=True)


class _RichProgress:
    """A rich progress bar: documents, tokens, MB/s and ETA."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console

    def __enter__(self) -> _RichProgress:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[docs]:,} docs  {task.fields[tokens]:,} tokens  "
                       "{task.fields[rate]:.1f} MB/s  ETA {task.fields[eta]}"),
            transient=True, console=self.console,
        )
        self.progress.__enter__()
        self.tasks: dict[str, int] = {}
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, p: P.ProgressInfo) -> None:
        phase = "tokenize" if p.phase == "done" else p.phase
        if phase not in self.tasks:
            label = "scanning characters" if phase == "scan" else "tokenizing"
            self.tasks[phase] = self.progress.add_task(label, total=1.0, docs=0, tokens=0, rate=0.0, eta="-")
        self.progress.update(self.tasks[phase], completed=p.fraction, docs=p.documents, tokens=p.tokens,
                             rate=p.mb_per_s, eta=human_duration(p.eta_s) if p.eta_s is not None else "-")
