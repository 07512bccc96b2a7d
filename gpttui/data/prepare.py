"""Tokenize documents into nanoGPT's `train.bin` / `val.bin`, streaming and in parallel.

    result = prepare(["fineweb/000_00000.parquet"], "data/fineweb")        # GPT-2 BPE
    result = prepare(["input.txt"], "data/shakespeare_char", tokenizer="char")

GPT-2: every document's `encode_ordinary` tokens followed by <|endoftext|> (50256), as nanoGPT's
OpenWebText and FineWeb preparation does. The validation split is by documents and
deterministic: with val_fraction p/q (default 0.0005, OpenWebText's), document i (0-based, in
input order, empty ones not counted) is val when floor((i+1)p/q) > floor(ip/q), i.e. every
2000th document, spread over all the input; with val_docs N, the last N documents. If a
fraction selects no document (a small input), the last document becomes val.

One text (a single .txt file that is one document: without --split-blank-lines, or with it and
no blank line) has no documents to split, so it is split by characters as nanoGPT's
shakespeare/prepare.py does: the first int(n * (1 - val_fraction)) characters train, the rest
val (val_fraction defaults to 0.1), each part tokenized on its own.

char: nanoGPT's shakespeare_char. The vocabulary is sorted(set(all text)), written to meta.pkl
as nanoGPT does; documents are concatenated with no separator, and the split is by position,
the same rule as one text's: the first int(n * (1 - val_fraction)) characters are train
(val_fraction defaults to 0.1, so a single text file gives exactly nanoGPT's first 90% / last
10%); val_docs N holds out the last N documents instead. Both passes over the text (the
vocabulary, or for one text its length, then the ids) run in one process for char: numpy maps
characters to ids (tiny Shakespeare takes ~0.05 s).

A val.bin shorter than VAL_MIN_TOKENS (one GPT-2 block) is written but warned about: a run
needs more than block_size val tokens.

Parallelism: worker processes, each holding its own encoding, tokenize chunks of a few MB:
parquet row groups they read themselves (the main process only names them), text and jsonl
chunks the main process reads. Results are written in input order with at most two chunks per
worker in flight, so memory is bounded whatever the input size. Processes, not tiktoken's
threads: on 2 cores two processes give ~1.8x, threads ~1.4x (DESIGN.md). Small inputs are
tokenized in process, since starting workers costs more than they save.

Safety: train.bin and val.bin are written as *.partial, fsynced, and renamed only when complete,
and meta.json comes last (gpttui.fs.atomic), so an interrupted run leaves no train.bin that looks
finished; a run that fails or is interrupted removes its .partial files and the output directory
if it made it. Workers exit with their parent however it ends (kill -9 included): each watches
the pipe multiprocessing gives it from the parent, which reads end-of-file once the parent process
is gone (a parent-death signal would fire when the *thread* that started them ends: the dashboard
prepares from a worker thread). A re-run with the same
sources (path, size, mtime) and options whose meta.json and .bin files agree does nothing
unless force=True; train.bin, val.bin or meta.pkl in a directory without gpttui's meta.json
(nanoGPT's own data) is refused unless force=True.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import resource_tracker
from pathlib import Path
from types import FrameType

import numpy as np

from gpttui.data import sources as S
from gpttui.data.metapkl import write_meta_pkl
from gpttui.data.sources import PrepareError, Source
from gpttui.data.tokenizer import GPT2_EOT, GPT2_VOCAB_SIZE, gpt2_encoder
from gpttui.fs import atomic, dirs, lock

FORMAT = "gpttui-prepare/1"
# the default val share by how the split is made: by characters as nanoGPT's shakespeare(_char),
# by documents as its OpenWebText
DEFAULT_VAL_FRACTION = {"characters": 0.1, "documents": 0.0005}
TOKENIZERS = ("gpt2", "char")
VAL_MIN_TOKENS = 1024  # GPT-2's block_size: a shorter val.bin is warned about
CHUNK_BYTES = 2 << 20  # text per task: big enough to amortise IPC, small enough to keep order cheap
PARALLEL_MIN_BYTES = 16 << 20  # below this much text, workers cost more than they save
PROGRESS_EVERY = 0.2  # seconds between progress callbacks
MANAGER_GRACE_S = 2.0  # how long a failing worker pool's manager thread may wind up before its pipes are closed
UINT16_VOCAB = 1 << 16  # ids 0..65535 fit uint16
_EOT = np.array([GPT2_EOT], dtype=np.uint32)


class PrepareFailed(PrepareError):
    """The work failed after the input was accepted (a write, a worker, a lock): not bad input."""


class ForeignData(PrepareError):
    """The output directory holds data gpttui prepare did not make: replaced only when forced
    (the dashboard's prepare screen then offers to)."""


@dataclass
class ProgressInfo:
    phase: str  # "scan" (the characters: char's vocabulary, one text's length), "tokenize", "done"
    documents: int
    skipped: int
    tokens: int
    text_bytes: int
    fraction: float  # of this phase's input, 0..1
    elapsed: float  # seconds in this phase
    source: str  # the file being read

    @property
    def mb_per_s(self) -> float:
        return self.text_bytes / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.fraction <= 0 or self.elapsed <= 0:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction


@dataclass
class PrepareResult:
    out_dir: Path
    up_to_date: bool  # nothing was done: meta.json already matched these inputs
    meta: dict  # what meta.json says
    notes: list[str] = field(default_factory=list)  # things the user should be told
    warnings: list[str] = field(default_factory=list)  # things in the output the user may want to redo

    @property
    def tokens(self) -> dict[str, int]:
        return self.meta["tokens"]


def prepare(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    tokenizer: str = "gpt2",
    val_fraction: float | None = None,
    val_docs: int | None = None,
    text_column: str = "text",
    workers: int | None = None,
    split_blank_lines: bool = False,
    errors: str = "strict",
    force: bool = False,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> PrepareResult:
    """Tokenize sources into out_dir/{train,val}.bin and meta.json (+ meta.pkl for char).

    Raises PrepareError (one line) for bad input, PrepareFailed (one line) when the work fails
    (a write, a worker, a lock); nothing is left half-written. An exception
    raised by `progress` aborts the run the same way (a UI can cancel through it).
    """
    opts = _options(tokenizer, val_fraction, val_docs, text_column, split_blank_lines, errors)
    if workers is not None and workers < 1:
        raise PrepareError(f"workers must be at least 1 (got {workers})")
    if not os.fspath(out_dir).strip():  # Path('') is '.': the files would land wherever the user stands
        raise PrepareError("--out is empty: expected a directory for train.bin and val.bin")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out}: is a file, expected a directory for train.bin and val.bin")
    srcs = S.resolve(sources, text_column)
    by_chars = opts["val_docs"] is None and (tokenizer == "char" or _one_text(srcs, opts))
    if opts["val_docs"] is None and opts["val_fraction"] is None:
        opts["val_fraction"] = DEFAULT_VAL_FRACTION["characters" if by_chars else "documents"]
    command = _command(sources, out, opts)
    if not force:
        found = read_meta(out)
        if (meta := _up_to_date(out, found, srcs, opts)) is not None:
            return PrepareResult(out, True, meta, warnings=val_warnings(meta))
        if foreign := _foreign_data(out, found):
            them = "them" if len(foreign) > 1 else "it"
            names = f"{', '.join(foreign[:-1])} and {foreign[-1]}" if len(foreign) > 1 else foreign[0]
            raise ForeignData(f"{out}: holds {names} not made by gpttui prepare (no meta.json "
                               f"of its); --force replaces {them}")
    made = dirs.missing(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        dirs.remove_empty(made)
        raise PrepareFailed(f"{out}: cannot create the output directory ({e.strerror})") from None
    with _locked(out):
        try:
            return _Run(srcs, out, opts, by_chars, command, workers, progress).run()
        except OSError as e:  # unreadable input, full disk…: one line, the partial files are gone
            dirs.remove_empty(made)
            raise PrepareFailed(f"{e.filename or out}: {e.strerror or e}") from None
        except BaseException:
            dirs.remove_empty(made)
            raise


def _options(tokenizer: str, val_fraction: float | None, val_docs: int | None, text_column: str,
             split_blank_lines: bool, errors: str) -> dict:
    if tokenizer not in TOKENIZERS:
        raise PrepareError(f"unknown tokenizer '{tokenizer}' (expected gpt2 or char)")
    if val_fraction is not None and val_docs is not None:
        raise PrepareError("give --val-fraction or --val-docs, not both")
    if val_fraction is not None and not 0 < val_fraction <= 0.5:
        raise PrepareError(f"val fraction must be in (0, 0.5] (got {val_fraction})")
    if val_docs is not None and val_docs < 1:
        raise PrepareError(f"val docs must be at least 1 (got {val_docs})")
    if errors not in ("strict", "replace"):
        raise PrepareError(f"errors must be strict or replace (got '{errors}')")
    if tokenizer == "char" and split_blank_lines:
        raise PrepareError("--split-blank-lines does not apply to --tokenizer char "
                           "(its text is one stream: blank lines are kept as characters)")
    return {"tokenizer": tokenizer, "val_fraction": val_fraction, "val_docs": val_docs,
            "text_column": text_column, "split_blank_lines": split_blank_lines, "errors": errors}


def _command(sources: Sequence, out: Path, opts: dict) -> str:
    """The CLI command that gives this output (kept in meta.json)."""
    argv = ["gpttui", "prepare", *map(str, sources), "--out", str(out), "--tokenizer", opts["tokenizer"]]
    if opts["val_docs"] is not None:
        argv += ["--val-docs", str(opts["val_docs"])]
    else:
        argv += ["--val-fraction", str(opts["val_fraction"])]
    if opts["text_column"] != "text":
        argv += ["--text-column", opts["text_column"]]
    if opts["split_blank_lines"]:
        argv.append("--split-blank-lines")
    if opts["errors"] != "strict":
        argv += ["--errors", opts["errors"]]
    return shlex.join(argv)


def _one_text(srcs: list[Source], opts: dict) -> bool:
    """Is the whole input one document of one .txt file? With --split-blank-lines this reads
    until a second paragraph starts (the whole file only when it has none)."""
    if len(srcs) != 1 or srcs[0].kind != "txt":
        return False
    if not opts["split_blank_lines"]:
        return True
    started, continued = 0, False
    for chunk in S.chunks(srcs[0], text_column=opts["text_column"], split_blank_lines=True,
                          errors=opts["errors"], target_bytes=CHUNK_BYTES):
        started += len(S.materialize(chunk.texts)[0]) - continued
        if started > 1:
            return False
        continued = chunk.open_end
    return started == 1


def counted(n: int, noun: str) -> str:
    """'1 document', '2,000 documents': a count and its noun, in the singular for one."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def val_warnings(meta: dict) -> list[str]:
    """A val.bin too short for a usual block: what it holds and the flag that makes it longer."""
    try:
        val, opts = int(meta["tokens"]["val"]), meta["options"]
    except (KeyError, TypeError, ValueError):
        return []
    if val >= VAL_MIN_TOKENS:
        return []
    raise_it = (f"raise --val-docs ({opts['val_docs']} now)" if opts.get("val_docs") is not None
                else f"raise --val-fraction ({opts.get('val_fraction')} now)")
    return [f"val.bin holds {counted(val, 'token')}, fewer than one {VAL_MIN_TOKENS:,}-token block (a run needs more "
            f"than block_size of them): {raise_it}"]


def read_meta(out_dir: str | os.PathLike) -> dict | None:
    """meta.json of a prepared directory, or None if missing or unreadable."""
    try:
        meta = json.loads((Path(out_dir) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _foreign_data(out: Path, meta: dict | None) -> list[str]:
    """train.bin / val.bin / meta.pkl in a directory whose meta.json (`meta`) is not gpttui prepare's. nanoGPT's
    own preparation writes none, and its output may be hours of tokenizing: it is replaced only with
    force. A meta.pkl alone counts too: it is someone's vocabulary, which a char preparation would
    overwrite and a GPT-2 one delete. gpttui's own output is redone when the inputs change (its
    meta.json says how it was made)."""
    if meta is not None and meta.get("format") == FORMAT:
        return []
    return [name for name in ("train.bin", "val.bin", "meta.pkl") if (out / name).exists()]


def _up_to_date(out: Path, meta: dict | None, srcs: list[Source], opts: dict) -> dict | None:
    """`meta` (out's meta.json) when it describes these sources and options and the files agree."""
    if (meta is None or meta.get("format") != FORMAT or meta.get("options") != opts
            or meta.get("sources") != [s.record() for s in srcs]):
        return None
    try:
        sizes = {split: meta["tokens"][split] * np.dtype(meta["dtype"]).itemsize for split in ("train", "val")}
    except (KeyError, TypeError):
        return None
    for split, size in sizes.items():
        path = out / f"{split}.bin"
        if not path.is_file() or path.stat().st_size != size:
            return None
    if opts["tokenizer"] == "char" and not (out / "meta.pkl").is_file():
        return None
    return meta


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """An exclusive lock on the output directory: two runs must not write the same files."""
    held = lock.FileLock(out)
    if not held.acquire():
        raise PrepareFailed(f"{out}: another gpttui prepare is writing there")
    try:
        yield
    finally:
        held.release()


# --- splitting documents between train and val -------------------------------------------


class _Splitter:
    """Appends each chunk's tokens to train.bin.partial / val.bin.partial by the split rule."""

    def __init__(self, out: Path, dtype: np.dtype, opts: dict, train_chars: int | None):
        self.dtype = dtype
        self.files = {s: open(out / f"{s}.bin.partial", "w+b") for s in ("train", "val")}
        self.tokens = {"train": 0, "val": 0}
        self.docs = {"train": 0, "val": 0}  # documents that start in each split (document rules)
        self.doc_index = 0  # documents started so far
        self.open = False  # the last chunk ended inside a document
        self.moved_docs = 0  # documents moved from the end of train to val at finish
        self.val_docs = opts["val_docs"]
        if self.val_docs is not None:
            self.rule = "tail"
        elif train_chars is not None:
            self.rule = "chars"
            self.train_chars = train_chars
        else:
            self.rule = "fraction"
            frac = Fraction(str(opts["val_fraction"])).limit_denominator(1_000_000)
            self.p, self.q = frac.numerator, frac.denominator
        # train.bin offsets of the latest documents: the val tail, or the last document in case
        # the fraction selects none
        self.starts: deque[int] = deque(maxlen=self.val_docs or 1)

    def _write(self, split: str, toks: np.ndarray) -> None:
        if len(toks):
            self.files[split].write(toks.data)
            self.tokens[split] += len(toks)

    def add(self, toks: np.ndarray, ends: np.ndarray, open_end: bool, split: str | None = None) -> None:
        """ends: token offsets where each complete document of the chunk ends; split: where the
        whole chunk goes under the characters rule (the text was cut before tokenizing)."""
        bounds = np.concatenate((np.zeros(1, np.int64), ends,
                                 np.array([len(toks)] if open_end else [], np.int64)))
        first_new = 1 if self.open else 0  # segment 0 continues the previous document
        nseg = len(bounds) - 1
        self.open = open_end
        if nseg == 0:
            return
        first_index = self.doc_index - first_new  # of segment 0
        self.doc_index += nseg - first_new
        if self.rule == "chars":
            self._write(split or "train", toks)
            return
        if self.rule == "fraction":
            idx = first_index + np.arange(nseg, dtype=np.int64)
            val = (idx + 1) * self.p // self.q > idx * self.p // self.q
        else:
            val = np.zeros(nseg, dtype=bool)
        train_base = self.tokens["train"]
        starts_train = ~val[first_new:]
        self.docs["train"] += int(starts_train.sum())
        self.docs["val"] += int((~starts_train).sum())
        # offsets in train.bin of the train documents that start in this chunk
        before = np.concatenate(([0], np.cumsum(np.where(val, 0, np.diff(bounds)))))
        self.starts.extend((train_base + before[first_new:-1][starts_train]).tolist())
        # write runs of consecutive segments that go to the same split
        change = np.flatnonzero(np.diff(val.astype(np.int8))) + 1
        for a, b in zip(np.concatenate(([0], change)), np.concatenate((change, [nseg]))):
            self._write("val" if val[a] else "train", toks[bounds[a]:bounds[b]])

    def finish(self) -> None:
        """Move documents from the end of train to val if the rule says so; check both splits."""
        total = self.doc_index
        if self.rule == "tail" and self.docs["train"] <= self.val_docs:
            raise PrepareError(f"--val-docs {self.val_docs} leaves no training documents "
                               f"(the input holds {total})")
        if self.rule == "fraction" and self.docs["val"] == 0:
            if self.docs["train"] < 2:
                raise PrepareError(f"need at least 2 non-empty documents for a train and a val split, the "
                                   f"input holds {total} (one .txt file alone is split by characters)")
        if self.rule == "tail" or (self.rule == "fraction" and self.docs["val"] == 0):
            self._move_tail(self.starts[0], len(self.starts))
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())

    def _move_tail(self, start: int, ndocs: int) -> None:
        """Train tokens from `start` on become val (val is empty when this is called)."""
        train, val = self.files["train"], self.files["val"]
        train.flush()
        size = np.dtype(self.dtype).itemsize
        pos, end = start * size, self.tokens["train"] * size
        while pos < end:
            block = os.pread(train.fileno(), min(16 << 20, end - pos), pos)
            val.write(block)
            pos += len(block)
        train.truncate(start * size)
        train.seek(start * size)
        moved = self.tokens["train"] - start
        self.tokens["train"] -= moved
        self.tokens["val"] += moved
        self.docs["train"] -= ndocs
        self.docs["val"] += ndocs
        self.moved_docs = ndocs

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def split_meta(self, opts: dict) -> dict:
        if self.rule == "chars":
            return {"by": "characters", "val_fraction": opts["val_fraction"], "train_chars": self.train_chars,
                    "rule": "the first train_chars characters of the concatenated text are train, "
                            "the rest val, each part tokenized on its own (nanoGPT's shakespeare and "
                            "shakespeare_char)"}
        if self.rule == "tail":
            return {"by": "documents", "val_docs": self.val_docs, "rule": "the last val_docs documents are val"}
        return {"by": "documents", "val_fraction": opts["val_fraction"], "p": self.p, "q": self.q,
                "rule": "document i (0-based, input order, empty ones not counted) is val "
                        "when (i+1)*p//q > i*p//q",
                "last_document_moved_to_val": self.moved_docs > 0}


# --- tokenizing ------------------------------------------------------------------------


@dataclass
class Encoded:
    tokens: np.ndarray
    ends: np.ndarray  # token offsets where each complete document ends
    skipped: int  # null/empty texts found while reading (a RowGroup's)
    text_bytes: int  # text bytes read (a RowGroup's)


def encode_gpt2(texts: S.Texts, open_end: bool) -> Encoded:
    """uint16 tokens of each text followed by <|endoftext|> (not after an open-ended last text).

    The encoder is tokenizer.gpt2_encoder's: gigatoken where it gives tiktoken's ids, else tiktoken.
    """
    encode = gpt2_encoder()[0]
    strings, skipped, nbytes = S.materialize(texts)
    parts: list[np.ndarray] = []
    for text in strings:
        parts += (np.array(encode(text), dtype=np.uint16), _EOT)
    if open_end and parts:
        parts.pop()
    if not parts:
        return Encoded(np.zeros(0, np.uint16), np.zeros(0, np.int64), skipped, nbytes)
    ends = np.cumsum([len(a) for a in parts], dtype=np.int64)[1::2]
    return Encoded(np.concatenate(parts).astype(np.uint16), ends, skipped, nbytes)


def _encode_chars(texts: S.Texts, open_end: bool, codes: np.ndarray, dtype: np.dtype) -> Encoded:
    """Character ids by binary search in the sorted code points (every character is in it)."""
    strings, skipped, nbytes = S.materialize(texts)
    cps = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32)
    ends = np.cumsum([len(t) for t in strings], dtype=np.int64)
    if open_end:
        ends = ends[:-1]
    return Encoded(np.searchsorted(codes, cps).astype(dtype), ends, skipped, nbytes)


def _no_documents(skipped: int) -> str:
    if skipped == 1:
        return "no documents: the one text is empty or null"
    if skipped:
        return f"no documents: all {skipped:,} texts are empty or null"
    return "no documents: the sources hold no text"


def _spawnable() -> bool:
    """Spawned workers re-run the main module from its file: a script read from stdin has none."""
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    return main_file is None or os.path.isfile(main_file)


_WORKER_IGNORED = {signal.SIGINT, signal.SIGTERM}  # in workers: the parent handles them and cleans up
_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # the signals a caller may turn into exceptions


@contextmanager
def _signals_held() -> Iterator[None]:
    """Run the block with Ctrl+C and termination held back, then act on one that came meanwhile.

    A terminal's Ctrl+C reaches the whole process group. A worker still importing its modules
    would print a traceback (or a fatal error) before _worker_init ignores it; a parent interrupted
    inside the pool's bookkeeping would strand half-spawned workers and the pool's semaphores (the
    resource tracker's 'leaked semaphore' warning under the user's line). Blocked in the thread that
    spawns them, the signals stay pending in the workers until _worker_init ignores them. In the
    main thread, where Python runs handlers, a signal that comes is noted and its handler called at
    the end, so it is delayed, never lost.
    """
    arrived: list[int] = []
    handlers: dict[int, Callable[[int, FrameType | None], object]] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _HELD:
            if callable(handler := signal.getsignal(sig)):
                handlers[sig] = handler
                signal.signal(sig, lambda signum, frame: arrived.append(signum))
    resource_tracker.ensure_running()  # first: starting it unblocks both signals in this thread
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_IGNORED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one pending here is noted as it unblocks
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if arrived:
            handlers[arrived[0]](arrived[0], None)


def _worker_init() -> None:
    for sig in _WORKER_IGNORED:  # held since the worker was spawned (_signals_held): dropped now
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True, name="parent-watch").start()
    gpt2_encoder()


def _exit_with_parent() -> None:
    """Exit when the parent process ends: multiprocessing's pipe from it reads end-of-file then,
    whatever killed it, and whichever of its threads started this worker."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


@dataclass
class _Piece:
    """A chunk to tokenize, and under the characters rule the split all of it goes to."""

    src: Source
    chunk: S.Chunk
    split: str | None = None


def _materialized(chunk: S.Chunk) -> S.Chunk:
    """The chunk with its texts as strings (a parquet row group read here), same accounting."""
    strings, skipped, nbytes = S.materialize(chunk.texts)
    return S.Chunk(strings, chunk.open_end, chunk.skipped + skipped, chunk.text_bytes + nbytes, chunk.units)


def _cut_chunk(chunk: S.Chunk, at: int) -> tuple[S.Chunk, S.Chunk]:
    """A materialized chunk cut after `at` of its characters (0 < at < its length): the document
    the cut falls in goes on in the second part. The first part carries the accounting."""
    texts = chunk.texts
    assert isinstance(texts, list)
    k, before = 0, 0
    while before + len(texts[k]) <= at:
        before += len(texts[k])
        k += 1
    off = at - before
    head = S.Chunk(texts[:k] + ([texts[k][:off]] if off else []), off > 0, chunk.skipped, chunk.text_bytes,
                   chunk.units)
    return head, S.Chunk([texts[k][off:], *texts[k + 1:]], chunk.open_end, 0, 0, 0.0)


def _train_chars(total: int, val_fraction: float) -> int:
    """Characters of train under the characters rule; too few characters for both splits are refused."""
    train = int(total * (1 - val_fraction))
    if not 0 < train < total:
        raise PrepareError(f"{counted(total, 'character')} {'is' if total == 1 else 'are'} too few for a train "
                           "and a val split")
    return train


class _Run:
    def __init__(self, srcs: list[Source], out: Path, opts: dict, by_chars: bool, command: str,
                 workers: int | None, progress: Callable[[ProgressInfo], None] | None):
        self.srcs, self.out, self.opts, self.command = srcs, out, opts, command
        self.by_chars = by_chars  # split by characters (char, or one text), else by documents
        self.workers = workers or len(os.sched_getaffinity(0))
        self.progress = progress
        self.est = sum(s.est_bytes for s in srcs) or 1  # progress units: expected text bytes
        self._last_report = 0.0
        self.notes: list[str] = []
        self.partials = [out / n for n in ("train.bin.partial", "val.bin.partial")]

    def _chunks(self) -> Iterator[tuple[Source, S.Chunk]]:
        for src in self.srcs:
            for chunk in S.chunks(src, text_column=self.opts["text_column"],
                                  split_blank_lines=self.opts["split_blank_lines"],
                                  errors=self.opts["errors"], target_bytes=CHUNK_BYTES):
                yield src, chunk

    def _pieces(self, train_chars: int | None) -> Iterator[_Piece]:
        """The chunks; under the characters rule each tagged train or val, the one the cut falls
        in cut in two, so the two parts are tokenized apart (as nanoGPT's shakespeare)."""
        seen = 0  # characters before this chunk
        for src, chunk in self._chunks():
            if train_chars is None:
                yield _Piece(src, chunk)
                continue
            if seen >= train_chars:
                yield _Piece(src, chunk, "val")
                continue
            chunk = _materialized(chunk)
            n = sum(map(len, chunk.texts))
            if seen + n <= train_chars:
                yield _Piece(src, chunk, "train")
            else:
                head, tail = _cut_chunk(chunk, train_chars - seen)
                yield _Piece(src, head, "train")
                yield _Piece(src, tail, "val")
            seen += n

    def run(self) -> PrepareResult:
        t0 = time.time()
        try:
            char_vocab = self.opts["tokenizer"] == "char"
            chars, train_chars, vocab_size = None, None, GPT2_VOCAB_SIZE
            if char_vocab or self.by_chars:
                chars, total_chars = self._scan(vocab=char_vocab)
                if self.by_chars:
                    train_chars = _train_chars(total_chars, self.opts["val_fraction"])
            if chars is not None:
                vocab_size = len(chars)
            dtype = np.dtype(np.uint16 if vocab_size <= UINT16_VOCAB else np.uint32)
            if dtype == np.uint32:
                self.notes.append(f"vocabulary of {vocab_size} exceeds 65536: tokens are uint32, which "
                                  "nanoGPT's train.py does not read (it memmaps uint16)")
            splitter = _Splitter(self.out, dtype, self.opts, train_chars)
            try:
                stats = self._tokenize(splitter, chars, dtype, train_chars)
                splitter.finish()
            finally:
                splitter.close()
            if splitter.moved_docs and splitter.rule == "fraction":
                self.notes.append("the val fraction selected no document: the last document is val")
            meta = self._meta(splitter, stats, vocab_size, dtype, chars, time.time() - t0)
            self._commit(meta, chars)
        except BaseException:
            for p in self.partials:
                p.unlink(missing_ok=True)
            raise
        return PrepareResult(self.out, False, meta, self.notes, val_warnings(meta))

    def _report(self, phase: str, docs: int, skipped: int, tokens: int, nbytes: int, units: float,
                t0: float, source: Path, force: bool = False) -> None:
        now = time.time()
        if self.progress and (force or now - self._last_report >= PROGRESS_EVERY):
            self._last_report = now
            self.progress(ProgressInfo(phase, docs, skipped, tokens, nbytes, min(units / self.est, 1.0),
                                       now - t0, str(source)))

    def _scan(self, vocab: bool) -> tuple[list[str] | None, int]:
        """First pass: the text's length in characters, and with `vocab` its vocabulary (the
        sorted set of its characters)."""
        seen: set[str] = set()
        n = docs = skipped = nbytes = 0
        units = 0.0
        t0 = self._last_report = time.time()
        for src, chunk in self._chunks():
            strings, chunk_skipped, chunk_bytes = S.materialize(chunk.texts)
            for text in strings:
                if vocab:
                    seen.update(text)
                n += len(text)
            docs += len(strings) - chunk.open_end
            skipped += chunk.skipped + chunk_skipped
            nbytes += chunk.text_bytes + chunk_bytes
            units += chunk.units
            self._report("scan", docs, skipped, 0, nbytes, units, t0, src.path)
        if not n:
            raise PrepareError(_no_documents(skipped))
        return (sorted(seen) if vocab else None), n

    def _tokenize(self, splitter: _Splitter, chars: list[str] | None, dtype: np.dtype,
                  train_chars: int | None) -> dict:
        docs = skipped = nbytes = 0
        units = 0.0
        t0 = self._last_report = time.time()
        parallel = chars is None and self.workers > 1 and self.est >= PARALLEL_MIN_BYTES
        if parallel and not _spawnable():
            parallel = False
            self.notes.append("tokenized in one process: worker processes re-import the main module, "
                              f"and {sys.modules['__main__'].__file__} is not a file")
        if chars is not None:
            codes = np.array([ord(c) for c in chars], dtype=np.uint32)
            encode: Callable = functools.partial(_encode_chars, codes=codes, dtype=dtype)
        else:
            encode = encode_gpt2
            if note := gpt2_encoder()[1]:
                self.notes.append(note)

        def write(piece: _Piece, enc: Encoded) -> None:
            nonlocal docs, skipped, nbytes, units
            chunk = piece.chunk
            splitter.add(enc.tokens, enc.ends, chunk.open_end, piece.split)
            docs += len(enc.ends)
            skipped += chunk.skipped + enc.skipped
            nbytes += chunk.text_bytes + enc.text_bytes
            units += chunk.units
            self._report("tokenize", docs, skipped, splitter.tokens["train"] + splitter.tokens["val"],
                         nbytes, units, t0, piece.src.path)

        if parallel:
            with _Workers(self.workers) as workers:
                for piece, encoded in workers.map(self._pieces(train_chars)):
                    write(piece, encoded)
        else:
            for piece in self._pieces(train_chars):
                write(piece, encode(piece.chunk.texts, piece.chunk.open_end))
        if docs == 0:
            raise PrepareError(_no_documents(skipped))
        elapsed = time.time() - t0
        self._report("done", docs, skipped, splitter.tokens["train"] + splitter.tokens["val"], nbytes,
                     units, t0, self.srcs[-1].path, force=True)
        return {"documents": docs, "skipped": skipped, "text_bytes": nbytes, "seconds": elapsed,
                "workers": self.workers if parallel else 1}

    def _meta(self, splitter: _Splitter, stats: dict, vocab_size: int, dtype: np.dtype,
              chars: list[str] | None, seconds: float) -> dict:
        meta = {
            "format": FORMAT,
            "tokenizer": self.opts["tokenizer"],
            "vocab_size": vocab_size,
            "eot": None if chars is not None else GPT2_EOT,
            "dtype": dtype.name,
            "tokens": dict(splitter.tokens),
            "documents": {"total": splitter.doc_index, "skipped_empty": stats["skipped"],
                          **(splitter.docs if splitter.rule != "chars" else {})},
            "split": splitter.split_meta(self.opts),
            "text_bytes": stats["text_bytes"],
            "sources": [s.record() for s in self.srcs],
            "options": self.opts,
            "command": self.command,
            "seconds": round(seconds, 3),
            "workers": stats["workers"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if chars is not None:
            meta["chars"] = "".join(chars)
        if dtype == np.uint32:
            meta["note"] = self.notes[0]
        return meta

    def _commit(self, meta: dict, chars: list[str] | None) -> None:
        out = self.out
        meta_text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
        # meta.json goes first and comes back last: in between the directory is not up to date
        (out / "meta.json").unlink(missing_ok=True)
        atomic.fsync_dir(out)
        os.replace(out / "val.bin.partial", out / "val.bin")
        if chars is not None:
            write_meta_pkl(out / "meta.pkl", chars)
        elif (out / "meta.pkl").exists():
            # a character vocabulary left from an earlier run would make nanoGPT decode GPT-2 ids as chars
            (out / "meta.pkl").unlink()
            self.notes.append(f"removed {out / 'meta.pkl'} left by an earlier character-level preparation")
        os.replace(out / "train.bin.partial", out / "train.bin")
        atomic.write_text(out / "meta.json", meta_text)  # fsyncs the directory: the renames above too


class _Workers:
    """encode_gpt2 in worker processes; results in input order, 2 chunks per worker in flight.

    The pool is made, its workers spawned and, on failure, killed under _signals_held."""

    def __init__(self, n: int):
        self.n = n
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.pool is None:
            return
        if exc_type is None:  # running chunks finish (a fraction of a second), queued ones are dropped
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        with _signals_held():  # a second Ctrl+C must not cut the cleanup short
            self._let_go(self.pool)

    @staticmethod
    def _let_go(pool: ProcessPoolExecutor) -> None:
        """Stop a failing pool now: a broken pool's shutdown(wait=True) can wait for good."""
        procs = list((getattr(pool, "_processes", None) or {}).values())
        manager = getattr(pool, "_executor_manager_thread", None)
        calls, results = getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.kill()   # SIGKILL: the workers ignore SIGTERM (the parent cleans up) and hold nothing to save
        for proc in procs:
            proc.join(5)
        # The pool's manager thread holds its queues, whose semaphores are unlinked only when it
        # lets go; before it does, it may be reading a result a killed worker sent half of, or
        # waiting on the queue's feeder thread, stuck writing a chunk to workers that are gone.
        # With our ends of both pipes closed that read meets end-of-file and that write EPIPE
        # (Python 3.12 closes the second itself, gh-94777). Else a signal's exit (os._exit) left
        # the resource tracker to print "There appear to be 5 leaked semaphore objects" under
        # the user's one line.
        # (read with getattr: private, so a Python that renames them skips this, not the exit)
        # A manager that saw the pool break closes the same ends itself as it winds up
        # (terminate_broken); both closing at once closes one descriptor twice (EBADF in its
        # thread, or another file's descriptor if the number was reused): it has a moment first.
        if manager is not None:
            manager.join(MANAGER_GRACE_S)
        if manager is None or manager.is_alive():
            for end in (getattr(results, "_writer", None), getattr(calls, "_reader", None)):
                if end is not None:
                    end.close()   # a no-op on one already closed
            if manager is not None:
                manager.join(5)

    def _submit(self, piece: _Piece) -> Future:
        """The first call makes the pool, and a call while fewer than n workers run spawns one
        (ProcessPoolExecutor spawns them on demand): both under _signals_held."""
        with _signals_held():
            if self.pool is None:
                # spawn: fork is unsafe from a threaded caller (the TUI runs prepare in a thread)
                self.pool = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_worker_init)
            return self.pool.submit(encode_gpt2, piece.chunk.texts, piece.chunk.open_end)

    def map(self, pieces: Iterable[_Piece]) -> Iterator[tuple[_Piece, Encoded]]:
        pending: deque[tuple[_Piece, Future]] = deque()
        try:
            for piece in pieces:
                pending.append((piece, self._submit(piece)))
                if len(pending) >= 2 * self.n:
                    piece, future = pending.popleft()
                    yield piece, future.result()
            while pending:
                piece, future = pending.popleft()
                yield piece, future.result()
        except BrokenProcessPool:  # from submit() or result()
            raise PrepareFailed("a tokenizing worker process died (out of memory?): "
                               "try fewer --workers") from None
