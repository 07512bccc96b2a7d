"""A run as TensorBoard event files: one scalar per step and eval field, at its iteration.

Written with the `tensorboard` package's own record writer and protos (an optional extra:
`pip install 'gpttui[tensorboard]'`; it needs neither torch nor TensorFlow) as plain
`simple_value` scalars, which TensorBoard, its EventAccumulator and other readers all take.
Tags: `step/<field>` for every figure of a training step, `eval/train_loss` and `eval/val_loss`.
The same mapping serves the engine's live mirror (`tensorboard_log = True`, engine/mirror.py).
"""

from __future__ import annotations

import io
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from gpttui.analysis import export
from gpttui.fs import atomic
from gpttui.run.history import RunHistory

STEP_FIELDS = ("loss", "lr", "dt_ms", "tokens_per_s", "mfu", "grad_norm", "tokens")
EVAL_FIELDS = ("train_loss", "val_loss")
INSTALL_HINT = "pip install 'gpttui[tensorboard]'"


class TensorBoardUnavailable(RuntimeError):
    """The tensorboard package is not installed; one line saying how to get it."""


def scalars(event: dict[str, Any]) -> list[tuple[str, float]]:
    """(tag, value) of every finite numeric field of a step or eval event; [] for other events."""
    kind = event.get("type")
    fields = STEP_FIELDS if kind == "step" else EVAL_FIELDS if kind == "eval" else ()
    out = []
    for name in fields:
        v = event.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append((f"{kind}/{name}", float(v)))
    return out


def history_events(h: RunHistory) -> Iterator[dict[str, Any]]:
    """The history's steps and evals as protocol-shaped events, in iteration order, with the
    tokens and tokens/s the export fills in where the source leaves them out."""
    return ({"type": row["kind"], **row} for row in export.rows(h))


def event_file_name() -> str:
    """TensorBoard's name for a new event file (it reads every `*tfevents*` file of a directory)."""
    global _files_named
    _files_named += 1
    return f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{_files_named}"


_files_named = 0


class EventWriter:
    """TensorBoard records (the tensorboard package's RecordWriter and protos) written to a binary
    stream we own, so a full disk or a read-only directory is an OSError naming our file, here,
    not a traceback on a writer thread."""

    def __init__(self, stream: BinaryIO) -> None:
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError:
            raise TensorBoardUnavailable(f"TensorBoard event files need the tensorboard package: {INSTALL_HINT}") from None
        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self._records = RecordWriter(stream)
        self._records.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        self.written = 0

    def add(self, event: dict[str, Any]) -> int:
        """Write the event's scalars; how many."""
        values = scalars(event)
        it = event.get("iter")
        if not values or not isinstance(it, int):
            return 0
        t = event.get("t")
        summary = self._summary_pb2.Summary(value=[self._summary_pb2.Summary.Value(tag=tag, simple_value=v)
                                                   for tag, v in values])
        wall = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else time.time()
        self._records.write(self._event_pb2.Event(wall_time=wall, step=it, summary=summary).SerializeToString())
        self.written += len(values)
        return len(values)


    def start_session(self, step: int) -> None:
        """A process (re)starting at `step`: TensorBoard drops what was recorded from `step` on
        (an engine resumed from an earlier checkpoint redoes those iterations)."""
        start = self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)
        self._records.write(self._event_pb2.Event(wall_time=time.time(), step=step, session_log=start).SerializeToString())


def write_history(h: RunHistory, logdir: str | Path) -> tuple[Path, int]:
    """The whole history as a new event file in `logdir`, written atomically; (the file, scalars written)."""
    buf = io.BytesIO()
    w = EventWriter(buf)
    for ev in history_events(h):
        w.add(ev)
    Path(logdir).mkdir(parents=True, exist_ok=True)
    path = Path(logdir) / event_file_name()
    atomic.write_bytes(path, buf.getvalue())
    return path, w.written
