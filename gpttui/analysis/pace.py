"""How fast a run goes now, and the one ETA rule built on it.

The status line, the extend screen and the doctor all ask `pace(history)` and count time with
`Pace.seconds`, so they give the same ETA for the same history:
  - the iteration time is the median `dt_ms` of the last ETA_STEPS steps of the current session,
    leaving out its first ETA_WARMUP iterations (compile, thread tuning, a cold cache); with
    fewer than ETA_MIN_STEPS such steps there is no pace yet (an ETA from the first few
    iterations is off by hours);
  - an eval's pause is the median over the last EVAL_PAUSES evals of the time between the steps
    around it beyond what those iterations take (a nanoGPT log without timestamps: the eval
    iteration's own dt beyond the usual, since nanoGPT times the eval with it); with none
    measured yet, an estimate from eval_iters;
  - the evals to come are those the engine will run: every multiple of eval_interval from now
    (unless it just ran) and one at the end (the engine evaluates when it reaches max_iters).
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass

from gpttui.run import layout
from gpttui.run.history import RunHistory

ETA_WARMUP = 5        # a session's first iterations don't time it ...
ETA_MIN_STEPS = 10    # ... and until this many after them are timed, there is no pace
ETA_STEPS = 64        # the iteration time: the median of this many recent steps
EVAL_PAUSES = 8       # an eval's pause: the median of this many recent evals'


@dataclass(frozen=True)
class Pace:
    ms_per_iter: float
    eval_pause_s: float            # what one eval (and its checkpoint) stops training for
    pause_measured: bool           # False: estimated from eval_iters (or 0 without a config)
    eval_interval: int             # 0: unknown
    evaluated_at: int | None       # the iteration of the last eval run (None: none, or a resume re-runs it)

    def evals(self, start: int, end: int) -> int:
        """Evals the engine runs going from iteration `start` to `end`."""
        return evals_to_come(start, end, self.eval_interval, self.evaluated_at)

    def seconds(self, start: int, end: int) -> float:
        """Time from iteration `start` to `end`: the iterations and the evals on the way."""
        return max(0, end - start) * self.ms_per_iter / 1000.0 + self.evals(start, end) * self.eval_pause_s


def evals_to_come(start: int, end: int, interval: int, evaluated_at: int | None = None) -> int:
    """Multiples of `interval` in [start, end) not yet run (the one at `start` runs unless
    `evaluated_at` says it did), plus the eval at `end`."""
    if end <= start:
        return 0
    n = 0
    if interval > 0:
        n = (end - 1) // interval - (start - 1) // interval
        if evaluated_at == start and start % interval == 0:
            n -= 1
    return n + 1


def iterations_done(h: RunHistory) -> int:
    """The engine's iter_num: past the last step, or where the last eval, checkpoint or start was."""
    its = [h.steps[-1].iter + 1] if h.steps else []
    its += [x[-1].iter for x in (h.evals, h.checkpoints) if x]
    if h.sessions:
        its.append(h.sessions[-1].start_iter)
    return max(its, default=0)


def pace(h: RunHistory) -> Pace | None:
    """The run's pace now; None until the current session has timed ETA_MIN_STEPS steps."""
    start = h.sessions[-1].start_iter if h.sessions else (h.steps[0].iter if h.steps else 0)
    recent: list[float] = []
    for s in reversed(h.steps):
        if s.iter < start + ETA_WARMUP or len(recent) == ETA_STEPS:
            break
        if s.dt_ms is not None and math.isfinite(s.dt_ms) and s.dt_ms > 0:
            recent.append(s.dt_ms)
    if len(recent) < ETA_MIN_STEPS:
        return None
    ms = statistics.median(recent)
    cfg = h.train_config()
    interval = cfg.eval_interval if cfg is not None else _spacing([e.iter for e in h.evals])
    pauses = _eval_pauses(h, ms / 1000.0)
    if pauses:
        pause, measured = statistics.median(pauses), True
    elif cfg is not None:
        # two splits x eval_iters forward passes of one micro-batch, ~1/3 of a training pass each
        pause, measured = 2 * cfg.eval_iters * ms / (3 * max(1, cfg.gradient_accumulation_steps)) / 1000.0, False
    else:
        pause, measured = 0.0, False
    last_eval = h.evals[-1].iter if h.evals else None
    return Pace(ms, pause, measured, interval or 0, last_eval)


def eta(h: RunHistory, p: Pace | None) -> float | None:
    """Seconds to max_iters at pace `p` (the history's, `pace(h)`); None without a pace yet, when
    max_iters is unknown or reached, or when the run has ended."""
    end, done = h.max_iters, iterations_done(h)
    if p is None or not end or done >= end or h.state in layout.FINAL_STATES:
        return None
    return p.seconds(done, end)


def _eval_pauses(h: RunHistory, typical_s: float) -> list[float]:
    """Seconds each of the recent evals stopped training for (see the module docstring)."""
    marks = sorted({e.iter for e in h.evals} | {c.iter for c in h.checkpoints})
    starts = [s.start_iter for s in h.sessions]
    steps = h.steps
    pauses: list[float] = []
    seen_after = -1
    for e in reversed(marks):
        if len(pauses) == EVAL_PAUSES:
            break
        j = bisect.bisect_left(steps, e, key=lambda s: s.iter)
        if j == 0 or j == len(steps) or j == seen_after:
            continue
        seen_after = j   # several evals between the same two steps are one gap
        a, b = steps[j - 1], steps[j]
        if any(a.iter < s <= b.iter for s in starts):
            continue     # a new session: the gap is start-up, not an eval
        inside = sum(1 for m in marks if a.iter < m <= b.iter)
        if a.t is not None and b.t is not None:
            pause = ((b.t - a.t) - (b.iter - a.iter) * typical_s) / inside
        elif h.kind == "nanogpt-log" and b.iter == e and b.dt_ms is not None:
            pause = b.dt_ms / 1000.0 - typical_s
        else:
            continue
        if pause > 0:
            pauses.append(pause)
    return pauses


def _spacing(its: list[int]) -> int | None:
    diffs = [b - a for a, b in zip(its, its[1:]) if b > a]
    return int(statistics.median(diffs)) if diffs else None
