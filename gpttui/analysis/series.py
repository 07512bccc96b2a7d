"""Bounded display history of a run's step losses, and the maths of drawing it.

A run of 600k iterations must not keep 600k points in the UI: `StepSeries` keeps the last
RAW_CAP steps exactly and the whole run in at most BUCKET_CAP buckets, each holding the
min, max and sum of the losses it covers (when the buckets fill up, neighbours merge and a
bucket covers twice as many steps). Zooming to the last N iterations reads the exact ring
when it reaches back far enough. `column_envelope` then cuts what is shown to the chart's
width, keeping each column's min and max so spikes stay visible. The full history stays in
metrics.jsonl.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

RAW_CAP = 4096
BUCKET_CAP = 2048
X_AXES = ("iter", "tokens", "time")


@dataclass
class Window:
    """Points to draw, oldest first: one per step or per bucket of steps."""

    iters: np.ndarray
    tokens: np.ndarray
    elapsed: np.ndarray     # seconds of run time (pauses between sessions removed)
    lo: np.ndarray          # min loss of the point
    hi: np.ndarray          # max loss of the point
    mean: np.ndarray
    count: np.ndarray       # steps the point stands for

    def x(self, axis: str) -> np.ndarray:
        return {"iter": self.iters, "tokens": self.tokens, "time": self.elapsed}[axis]

    def __len__(self) -> int:
        return len(self.iters)


class StepSeries:
    """The run's step losses in bounded memory (see the module docstring)."""

    def __init__(self) -> None:
        self.raw: deque[tuple[int, float, float, float]] = deque(maxlen=RAW_CAP)  # iter, tokens, elapsed, loss
        self.span = 1          # steps per closed bucket
        # closed buckets, parallel lists: last iter, tokens, elapsed at its end; min, max, sum, count
        self._b: list[list[float]] = [[] for _ in range(7)]
        self._open: list[float] | None = None
        self.steps = 0         # steps seen (after truncations)
        self.version = 0       # bumps on every change, so the chart knows when to redraw

    def add(self, it: int, tokens: float, elapsed: float, loss: float) -> None:
        if not math.isfinite(loss):
            return  # a NaN loss is reported by the engine; it has no place on a chart
        self.raw.append((it, tokens, elapsed, loss))
        o = self._open
        if o is None:
            self._open = [it, tokens, elapsed, loss, loss, loss, 1]
        else:
            o[0], o[1], o[2] = it, tokens, elapsed
            o[3] = min(o[3], loss)
            o[4] = max(o[4], loss)
            o[5] += loss
            o[6] += 1
        if self._open[6] >= self.span:
            for col, v in zip(self._b, self._open):
                col.append(v)
            self._open = None
            if len(self._b[0]) >= BUCKET_CAP:
                self._merge()
        self.steps += 1
        self.version += 1

    def _merge(self) -> None:
        """Halve the buckets: each pair becomes one covering twice the steps."""
        it, tok, el, lo, hi, sm, n = self._b
        m = len(it) // 2 * 2
        self._b = [
            it[1:m:2], tok[1:m:2], el[1:m:2],
            [min(a, b) for a, b in zip(lo[0:m:2], lo[1:m:2])],
            [max(a, b) for a, b in zip(hi[0:m:2], hi[1:m:2])],
            [a + b for a, b in zip(sm[0:m:2], sm[1:m:2])],
            [a + b for a, b in zip(n[0:m:2], n[1:m:2])],
        ]
        if m < len(it):  # an odd one out stays open for the next steps
            self._open = [it[-1], tok[-1], el[-1], lo[-1], hi[-1], sm[-1], n[-1]]
        self.span *= 2

    def truncate_from(self, start: int) -> None:
        """Forget steps at iterations >= start (a resume from an earlier checkpoint)."""
        while self.raw and self.raw[-1][0] >= start:
            self.raw.pop()
        if self._open is not None and self._open[0] >= start:
            self._open = None
        it = self._b[0]
        keep = len(it)
        while keep and it[keep - 1] >= start:
            keep -= 1
        self._b = [col[:keep] for col in self._b]
        self.steps = min(self.steps, int(sum(self._b[6])) + (self._open[6] if self._open else 0)
                         + len(self.raw))
        self.version += 1

    @property
    def last_iter(self) -> int | None:
        return self.raw[-1][0] if self.raw else None

    def window(self, last_n: int | None = None) -> Window:
        """Points covering the last `last_n` iterations (None: the whole run)."""
        last = self.last_iter
        if last is None:
            return _window([], [], [], [], [], [], [])
        since = -math.inf if not last_n else last - last_n
        raw_covers = len(self.raw) == self.steps or (self.raw and self.raw[0][0] <= since)
        if raw_covers:
            pts = [p for p in self.raw if p[0] > since] if last_n else list(self.raw)
            it, tok, el, loss = zip(*pts) if pts else ([], [], [], [])
            return _window(it, tok, el, loss, loss, loss, [1] * len(it))
        cols = [list(c) for c in self._b]
        if self._open is not None:
            for col, v in zip(cols, self._open):
                col.append(v)
        it, tok, el, lo, hi, sm, n = cols
        first = 0
        if last_n:
            first = next((i for i, v in enumerate(it) if v > since), len(it))
            first = max(0, first - 1)  # the bucket straddling the edge
        sl = slice(first, None)
        mean = [s / c for s, c in zip(sm[sl], n[sl])]
        return _window(it[sl], tok[sl], el[sl], lo[sl], hi[sl], mean, n[sl])


def _window(it, tok, el, lo, hi, mean, n) -> Window:
    f = np.asarray
    return Window(f(it, dtype=np.int64), f(tok, dtype=np.float64), f(el, dtype=np.float64),
                  f(lo, dtype=np.float64), f(hi, dtype=np.float64), f(mean, dtype=np.float64),
                  f(n, dtype=np.float64))


def ema(mean: np.ndarray, count: np.ndarray, smoothing: float) -> np.ndarray:
    """Debiased exponential moving average, each point weighing as many steps as it stands for.

    smoothing is the decay per step (TensorBoard's slider): 0 = off, 0.99 = ~100 steps.
    """
    if smoothing <= 0 or len(mean) == 0:
        return mean.copy()
    out = np.empty_like(mean)
    acc = weight = 0.0
    for i, (m, c) in enumerate(zip(mean.tolist(), count.tolist())):
        d = smoothing ** c
        acc = d * acc + (1.0 - d) * m
        weight = d * weight + (1.0 - d)
        out[i] = acc / weight
    return out


@dataclass
class Envelope:
    """One entry per chart column: where it is, and the min, max and mean of its points."""

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray


def column_envelope(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray,
                    count: np.ndarray, columns: int) -> Envelope:
    """Bucket points (x ascending) into `columns` equal x-ranges, keeping min, max and mean."""
    if len(x) <= columns or columns < 1:
        return Envelope(x.astype(np.float64), lo, hi, mean)
    x = x.astype(np.float64)
    x0, x1 = x[0], x[-1]
    col = np.minimum(((x - x0) / max(x1 - x0, 1e-12) * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    w = mean * count
    return Envelope(
        x=np.maximum.reduceat(x, starts),
        lo=np.minimum.reduceat(lo, starts),
        hi=np.maximum.reduceat(hi, starts),
        mean=np.add.reduceat(w, starts) / np.add.reduceat(count, starts),
    )
