"""A run as TensorBoard event files: one scalar per step and eval field, at its iteration.

Written with the `tensorboard` package's own EventFileWriter (an optional extra:
`pip install 'gpttui[tensorboard]'`; it needs neither torch nor TensorFlow) as plain
`simple_value` scalars, which TensorBoard, its EventAccumulator and other readers all take.
Tags: `step/<field>` for every figure of a training step, `eval/train_loss` and `eval/val_loss`.
The same mapping serves the engine's live mirror (`tensorboard_log = True`, engine/mirror.py).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator

from gpttui.analysis import export
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


class EventWriter:
    """One TensorBoard event file in `logdir`, taking protocol events."""

    def __init__(self, logdir: str | Path, flush_secs: float = 10.0) -> None:
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise TensorBoardUnavailable(f"TensorBoard event files need the tensorboard package: {INSTALL_HINT}") from None
        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        Path(logdir).mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(logdir), flush_secs=flush_secs)
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
        self._writer.add_event(self._event_pb2.Event(wall_time=wall, step=it, summary=summary))
        self.written += len(values)
        return len(values)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def write_history(h: RunHistory, logdir: str | Path) -> tuple[Path, int]:
    """The whole history into a new event file under `logdir`; (the file, scalars written)."""
    before = set(Path(logdir).glob("events.out.tfevents.*"))
    w = EventWriter(logdir)
    try:
        for ev in history_events(h):
            w.add(ev)
    finally:
        w.close()
    (new,) = set(Path(logdir).glob("events.out.tfevents.*")) - before
    return new, w.written
