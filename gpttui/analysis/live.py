"""What the dashboard knows about a run, fed one protocol event at a time, in bounded memory.

`LiveRun.add(event)` updates:
  - `history`, a `runlog.RunHistory` (hello, config, evals, checkpoints, state, errors), whose
    `steps` list is thinned once it grows past HISTORY_STEPS (recent steps stay exact), so a
    run of a million iterations does not hold a million objects; metrics.jsonl has them all;
  - `series`, the chart's min/max-preserving step history (analysis/series.py);
  - short rings of recent MFU, tokens/s, lr and grad norm for the sparklines;
  - timing: training time (the gaps between sessions and the time paused kept apart); the pace
    (ms/iter, what an eval costs) and the ETA are analysis/pace.py's, from the history.
No Textual and no torch: tests and benches use it directly.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Iterable

from gpttui.analysis import pace as P
from gpttui.analysis.series import StepSeries
from gpttui.run import config as C
from gpttui.run import layout
from gpttui.run.history import RunHistory, starting

HISTORY_STEPS = 20_000   # RunHistory.steps is thinned past this ...
HISTORY_RECENT = 5_000   # ... keeping the most recent ones exact
SPARK_POINTS = 512


class LiveRun:
    def __init__(self) -> None:
        self.history = RunHistory(source="live")
        self.series = StepSeries()
        self.mfu: deque[float] = deque(maxlen=SPARK_POINTS)
        self.tokens_per_s: deque[float] = deque(maxlen=SPARK_POINTS)
        self.lr: deque[float] = deque(maxlen=SPARK_POINTS)
        self.grad_norm: deque[float] = deque(maxlen=SPARK_POINTS)
        self.iter: int = 0        # iterations done (the engine's iter_num)
        self.tokens: float = 0.0
        self.loss: float | None = None
        self.version = 0          # bumps on every applied event
        self.evals_version = 0    # bumps when the eval table changes
        self.dropped = 0          # step events the UI never saw (it fell behind)
        self.undo: dict[str, Any] | None = None   # the engine's offer to undo a live change (its event)
        self._session_t0: float | None = None   # wall time the current session started
        self._base = 0.0                        # run time accumulated by earlier sessions
        self._last_t: float | None = None       # wall time of the newest event
        self._pace: tuple[int, P.Pace | None] = (-1, None)   # (version, the pace then)
        self.stopped_s = 0.0                    # time between sessions (the run was not running)

    # ------------------------------------------------------------ events

    def add_all(self, events: Iterable[dict[str, Any]]) -> None:
        for e in events:
            self.add(e)

    def add(self, e: dict[str, Any]) -> None:
        kind = e.get("type")
        t = e.get("t") if isinstance(e.get("t"), (int, float)) else None
        if kind == "hello":
            self._on_hello(e, t)
        elif kind == "session":
            self._on_session(e)
        self.history.add(e)
        if kind == "step":
            self._on_step(e, t)
        elif kind == "undo":
            self.undo = e if e.get("available") else None
            if e.get("done") is True and isinstance(e.get("to_iter"), int):
                self.series.truncate_from(e["to_iter"])  # the run went back: its curve too
                self.evals_version += 1
        elif kind in ("eval", "checkpoint"):
            self.evals_version += 1
        elif kind == "config" and isinstance(e.get("changes"), dict):
            self.evals_version += 1  # best/gap notes don't change, but max_iters may have
        it = e.get("iter")
        if kind not in ("hello", "step") and isinstance(it, int) and it > self.iter:
            self.iter = it  # an eval, checkpoint or final state at the iteration about to run
        if t is not None and not starting(e):   # (until the new engine's hello the run stands stopped)
            self._last_t = t if self._last_t is None else max(self._last_t, t)
        self.version += 1

    def _on_hello(self, e: dict[str, Any], t: float | None) -> None:
        start = e.get("start_iter")
        if self._session_t0 is not None and self._last_t is not None:
            self._base += max(0.0, self._last_t - self._session_t0 - self._session_paused(self._last_t))
            if t is not None:
                self.stopped_s += max(0.0, t - self._last_t)
        self.undo = None   # a new engine says again if it has one to offer
        if isinstance(start, int):
            last = self.history.last_iter
            if last is not None and start <= last:
                self.series.truncate_from(start)
                self.evals_version += 1
                if self.series.raw:  # run time as it stood where the new branch starts
                    self._base = self.series.raw[-1][2]
            self.iter = start
        self._session_t0 = t

    def _on_session(self, e: dict[str, Any]) -> None:
        """A nanoGPT process starting in a log being followed: before the last iteration, a restart
        from an earlier checkpoint (or the log begun anew), whose abandoned branch the curve drops too."""
        start, last = e.get("iter"), self.history.last_iter
        if isinstance(start, int) and last is not None and start < last:
            self.series.truncate_from(start)
            self.evals_version += 1
            self.iter = start

    def _on_step(self, e: dict[str, Any], t: float | None) -> None:
        it = e.get("iter")
        loss = e.get("loss")
        if not isinstance(it, int):
            return
        self.iter = it + 1  # iterations done: the engine's iter_num once this step is taken
        tokens = e.get("tokens")
        tpi = self.history.tokens_per_iter or 0
        self.tokens = float(tokens) if isinstance(tokens, (int, float)) else float(it * tpi)
        if self._session_t0 is None and t is not None:
            self._session_t0 = t  # a history without a hello
        elapsed = self._base + (t - self._session_t0 - self._session_paused(t)
                                if t is not None and self._session_t0 is not None else 0.0)
        if isinstance(loss, (int, float)):
            self.loss = float(loss)
            self.series.add(it, self.tokens, elapsed, float(loss))
        for ring, key in ((self.mfu, "mfu"), (self.tokens_per_s, "tokens_per_s"),
                          (self.lr, "lr"), (self.grad_norm, "grad_norm")):
            v = e.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                ring.append(float(v))
        steps = self.history.steps
        if len(steps) > HISTORY_STEPS:
            old = steps[:-HISTORY_RECENT]
            self.history.steps = old[::2] + steps[-HISTORY_RECENT:]

    # ------------------------------------------------------------ figures

    @property
    def hello(self) -> dict[str, Any]:
        return self.history.hello or {}

    @property
    def state(self) -> str | None:
        return self.history.state

    @property
    def max_iters(self) -> int | None:
        return self.history.max_iters

    def train_config(self) -> C.TrainConfig | None:
        return self.history.train_config()

    def pace(self) -> P.Pace | None:
        """How fast the run goes now (None until it has timed enough steps): analysis/pace.py."""
        if self._pace[0] != self.version:
            self._pace = (self.version, P.pace(self.history))
        return self._pace[1]

    @property
    def ms_per_iter(self) -> float | None:
        """Median time of the recent iterations (evals not included)."""
        p = self.pace()
        return p.ms_per_iter if p else None

    def elapsed(self, now: float | None = None) -> float:
        """Training time in seconds: all sessions, without the gaps between them (`stopped_s`)
        nor the time paused (`paused_s`)."""
        if self._session_t0 is None:
            return self._base
        end = self._last_t if self._last_t is not None else self._session_t0
        if now is not None and self.state in layout.ACTIVE_STATES and self.state != "starting":
            end = max(end, now)  # (a starting engine has not begun its session yet)
        return self._base + max(0.0, end - self._session_t0 - self._session_paused(end))

    def paused_for(self, now: float | None = None) -> float:
        """Seconds the run was paused, a pause still going on included."""
        return self.history.paused_between(-math.inf, now if now is not None else self._last_t or 0.0)

    def _session_paused(self, end: float) -> float:
        return self.history.paused_between(self._session_t0 or 0.0, end)

    def eval_pause(self) -> float | None:
        """Seconds an eval (and its checkpoint) costs: measured, else estimated from ms/iter."""
        p = self.pace()
        return p.eval_pause_s if p else None

    def eta(self) -> float | None:
        """Seconds to max_iters: the steady iteration time plus the evals still to come."""
        return P.eta(self.history, self.pace())

    def eval_rows(self) -> list[tuple[int, float | None, float | None, float | None, str]]:
        """(iter, train loss, val loss, gap, note) per eval: note says best so far / checkpoint saved."""
        saved = {c.iter for c in self.history.checkpoints}
        rows = []
        best = math.inf
        for ev in self.history.evals:
            notes = []
            if ev.val_loss is not None and ev.val_loss < best:
                best = ev.val_loss
                notes.append("best so far")
            if ev.iter in saved:
                notes.append("checkpoint saved")
            gap = (ev.val_loss - ev.train_loss
                   if ev.val_loss is not None and ev.train_loss is not None else None)
            rows.append((ev.iter, ev.train_loss, ev.val_loss, gap, ", ".join(notes)))
        return rows

    @property
    def last_checkpoint_iter(self) -> int | None:
        cps = self.history.checkpoints
        return cps[-1].iter if cps else None

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.history.errors[-1] if self.history.errors else None
