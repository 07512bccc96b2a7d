"""Forecast a run's val loss from the evals so far, aware of the learning-rate schedule.

Model (after Tissue et al. 2024, "Scaling Law with Learning Rate Annealing"):

    L(t) = c0 + c1 * g_lambda(S(t)) - b * L_ref * D(t),   g_lambda(S) = (S^lambda - 1) / lambda

- S(t) is the lr area: the sum of lr(i)/peak_lr over iterations i < t, i.e. the steps the
  run has taken measured in peak-lr steps (a constant-lr run: S = steps).
- g_lambda is a Box-Cox family with c1 <= 0 (the loss falls as S grows): lambda < 0 is the
  usual power law E + A * S^-alpha (alpha = -lambda), lambda = 0 is log-linear, and
  0 < lambda <= 1 decelerates less, down to linear in S. Large GPTs on web text sit at
  lambda ~ -0.5 (their loss flattens); small models early in training (a char model on
  Shakespeare) are near-linear in lr area, which no power law can follow, so the family
  spans both and the data choose.
- D(t) is the annealing deficit: how far the lr has come down from its peak, as a fraction
  of the peak, lagged by an exponential moving average of ~100 iterations (the loss takes a
  while to settle after the lr drops). It is 0 during warm-up and at constant lr, and ~0.9 at
  the end of nanoGPT's cosine (min_lr = lr/10). A cosine decay's late drop is this term.
- b is fixed at ANNEAL_GAIN (a full anneal removes ~3% of the loss, as LR cool-down
  studies report). Fitting it from half a run was unstable in back-tests (an lr that has
  only started to fall cannot separate it from the progress term), so it is a constant, not
  a fit parameter; L_ref is the mean of the last evals used.
- c0, c1 are linear least squares for each lambda on a grid; the lambdas are averaged with
  weights exp(-SSE / 2 sigma^2) (sigma from the best fit's residuals), which gives the
  central value and the model spread. The band adds that spread, the eval noise (growing
  with the doublings extrapolated) and a +-30% uncertainty on b.
- Iteration 0 and the first tenth of the fitted span (the fast initial transient) are
  left out of the fit.

Back-tests (fit on the first part of a run, predict its last eval) are printed by
tests/test_doctor.py. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ANNEAL_GAIN = 0.035      # loss fraction removed per unit of normalised lr decay
ANNEAL_LAG = 0.99        # per-iteration EMA factor of the lr the loss "feels"
LAMBDAS = np.linspace(-2.0, 1.0, 121)
MIN_POINTS = 3
FIT_START = 0.1         # evals before this fraction of the last one are the initial transient


@dataclass
class Forecast:
    """The val loss expected at `iter`, with its band (model spread, eval noise, extrapolation)."""

    iter: int
    val_loss: float
    low: float
    high: float
    n_evals: int   # evals the fit used

    def to_dict(self) -> dict:
        return {"iter": self.iter, "val_loss": round(self.val_loss, 4),
                "low": round(self.low, 4), "high": round(self.high, 4)}


@dataclass
class Fit:
    """A fitted curve: call `predict(iter)` for a forecast with its band."""

    area: np.ndarray            # lr area S(i) for i in 0..horizon
    deficit: np.ndarray         # annealing deficit D(i)
    lambdas: np.ndarray
    weights: np.ndarray
    coefs: np.ndarray           # (n_lambda, 2): c0, c1 per lambda
    l_ref: float
    sigma: float                # eval noise (residual std of the best fit)
    n_points: int
    first_iter: int
    last_iter: int

    def _features(self, it: int) -> tuple[float, float]:
        it = min(max(it, 1), len(self.area) - 1)
        return float(self.area[it]), float(self.deficit[it])

    def curve(self, its: Sequence[int]) -> np.ndarray:
        """The central fitted curve at the given iterations (for charts)."""
        return np.array([self._predict_all(it, ANNEAL_GAIN) @ self.weights for it in its])

    def _predict_all(self, it: int, gain: float) -> np.ndarray:
        s, d = self._features(it)
        lam = self.lambdas
        safe = np.where(np.abs(lam) < 1e-9, 1.0, lam)
        g = np.where(np.abs(lam) < 1e-9, math.log(s), (s ** lam - 1.0) / safe)
        return self.coefs[:, 0] + self.coefs[:, 1] * g - gain * self.l_ref * d

    def predict(self, it: int) -> Forecast:
        preds = self._predict_all(it, ANNEAL_GAIN)
        mean = float(preds @ self.weights)
        spread = math.sqrt(float(self.weights @ (preds - mean) ** 2))
        _, d_now = self._features(self.last_iter)
        _, d_then = self._features(it)
        anneal_unc = 0.3 * ANNEAL_GAIN * self.l_ref * abs(d_then - d_now)
        # how far past the data we extrapolate, in doublings of the fitted span
        reach = max(0.0, math.log2(max(it, 1) / max(self.last_iter, 1)))
        half = 2.0 * spread + self.sigma * (1.0 + reach) + anneal_unc
        return Forecast(it, mean, mean - half, mean + half, self.n_points)


def _g(s: np.ndarray, lam: float) -> np.ndarray:
    return np.log(s) if abs(lam) < 1e-9 else (s ** lam - 1.0) / lam


def area_deficit(schedule: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S(i) and D(i) for a normalised schedule (see the module docstring)."""
    area = np.concatenate([[0.0], np.cumsum(schedule)[:-1]]) + 1.0  # steps taken, >= 1
    drop = np.maximum.accumulate(schedule) - schedule                # 0 in warm-up
    return area, _ema(drop, ANNEAL_LAG)


def _ema(x: np.ndarray, lam: float, block: int = 1024) -> np.ndarray:
    """y[i] = lam*y[i-1] + (1-lam)*x[i], y[-1] = 0; vectorised in blocks (lam**-block stays finite)."""
    out = np.empty_like(x, dtype=float)
    powers = lam ** np.arange(block)
    carry = 0.0
    for start in range(0, len(x), block):
        seg = x[start:start + block]
        n = len(seg)
        p = powers[:n]
        acc = np.cumsum(seg / p) * p * (1.0 - lam)       # sum_k lam^(i-k) (1-lam) x_k within the block
        out[start:start + n] = acc + carry * p * lam
        carry = out[start + n - 1]
    return out


def fit(iters: Sequence[int], losses: Sequence[float], schedule: np.ndarray) -> Fit | None:
    """Fit the model on (iter, val_loss) points; None with fewer than MIN_POINTS usable ones.

    Iteration 0 (the untrained model) and the first tenth of the span (the fast initial
    transient) are left out; non-finite losses are ignored. `schedule` is lr(i)/peak for
    i in 0..the furthest iteration to be predicted.
    """
    pts = [(int(i), float(v)) for i, v in zip(iters, losses)
           if i > 0 and v is not None and math.isfinite(v)]
    if not pts:
        return None
    last = max(i for i, _ in pts)
    if last >= len(schedule):
        raise ValueError("schedule shorter than the evals")
    pts = [(i, v) for i, v in pts if i >= FIT_START * last]
    if len(pts) < MIN_POINTS:
        return None
    it = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    area, deficit = area_deficit(schedule)
    l_ref = float(y[-min(3, len(y)):].mean())
    target = y + ANNEAL_GAIN * l_ref * deficit[it]     # the loss without the annealing bonus
    x = area[it]
    coefs, sses, lambdas = [], [], []
    for lam in LAMBDAS:
        X = np.column_stack([np.ones_like(x), _g(x, lam)])
        coef, *_ = np.linalg.lstsq(X, target, rcond=None)
        if coef[1] > 0:          # a loss that rises with training is not this model
            continue
        coefs.append(coef)
        sses.append(float(((X @ coef - target) ** 2).sum()))
        lambdas.append(lam)
    if not coefs:
        return None
    sse = np.array(sses)
    dof = max(len(y) - 3, 1)
    sigma = math.sqrt(sse.min() / dof) if sse.min() > 0 else 1e-6
    w = np.exp(-(sse - sse.min()) / (2 * sigma ** 2))
    w /= w.sum()
    return Fit(area, deficit, np.array(lambdas), w, np.array(coefs), l_ref, sigma, len(y),
               int(it[0]), int(it[-1]))

