"""Forecast a run's val loss from the evals so far, aware of the learning-rate schedule.

Model (after Tissue et al. 2024, "Scaling Law with Learning Rate Annealing", and the
multi-power law of Luo et al. 2025: the loss as a function of the schedule's area and of how
far the rate has come down):

    L(t) = c0 + c1 * g_lambda(S(t)) - c2 * D(t),   g_lambda(S) = (S^lambda - 1) / lambda

- S(t) is the lr area: the sum of lr(i)/peak_lr over iterations i < t, i.e. the steps the
  run has taken measured in peak-lr steps (a constant-lr run: S = steps).
- g_lambda is a Box-Cox family with c1 <= 0 (the loss falls as S grows): lambda < 0 is the
  usual power law E + A * S^-alpha (alpha = -lambda), lambda = 0 is log-linear, and
  0 < lambda <= 1/2 decelerates less, down to the square root of S. Large GPTs on web text sit at
  lambda ~ -0.5; small models early in training are nearer linear in lr area, so the family
  spans both and the data choose. Not past 1/2: a loss falling faster than that over the evals
  is an early plateau breaking, which no law carries on (the faster lambdas followed such breaks
  into forecasts far too low).
- D(t) is the annealing deficit realised by t, the multi-power law's: every drop of the lr
  (as a fraction of the peak) counts as it is worked off by the lr area run after it,
  D(t) = sum_k (drop_k - drop_k-1) * G(lr_k^-ANNEAL_GAMMA * (S(t) - S(k))),
  G(x) = 1 - (1 + ANNEAL_C * x)^-ANNEAL_BETA. It is 0 during warm-up and at constant lr, and
  it lags the lr the more the lower the lr has come: a decay packed into a run's last fifth (WSD)
  is worked off less by the end than a cosine's spread over the run.
- c2 >= 0 is fitted, with a prior: c2 ~ gain * L_ref +- ANNEAL_SD * L_ref (ridge, one
  pseudo-observation). Half a cosine run says a little about it; a constant-lr run nothing, and
  then the prior is all there is, and its spread goes into the band. The gain is ANNEAL_GAIN for
  a character-level vocabulary and ANNEAL_GAIN_SUBWORD for one of SUBWORD_VOCAB tokens or more
  (`anneal_gain`): on the tuning half, runs on BPE tokens gain far less from the lr's decay, as a
  fraction of the loss, than runs on characters (the real GPU logs on web text among the fixtures
  do too); with no vocabulary known, the character-level prior.
- For each lambda on a grid, (c0, c1, c2) are weighted least squares with their covariance; the
  lambdas are averaged with weights exp(-SSE / 2 sigma^2).
- The 90% band is BAND_SCALE * BAND_Z deviations of two parts, added in quadrature: what the fit
  itself knows (the parameters' uncertainty at the target, the spread between lambdas, the
  target eval's own noise: `fit_sd`), and the law's misfit, which grows with how far the forecast
  reaches: MISFIT * loss * ln(S(target) / S(last eval)) (`reach`; with a gap of the iterations,
  ln(target / last eval) where that is further: at min_lr the lr area hardly grows, that gap
  does). The fit alone knows too little of its own misfit: on the tuning half its deviation
  hardly tells which forecasts miss, how far they reach does. MISFIT is the value under which
  the tuning half's errors are likeliest, as normal deviations of that sum (up to a common
  scale); BAND_SCALE is then split conformal's 90% quantile of the factor each tuning case's
  band needed to hold the truth, the largest of the three cuts' (25, 50, 75% of the run), so the
  band holds at each, not only on average.
  `bench/forecast_backtest.py --split tuning --calibrate` prints both.
- A forecast whose band spans more than MAX_BAND of the loss either side is not given (`too_early`
  says so): that far out the evals so far do not say where the loss goes.
- Iteration 0 and the first FIT_START of the span (the fast initial transient) are left out;
  fewer than MIN_POINTS evals past it get no forecast (one degree of freedom beyond c0, c1, c2).
- A loss that rises (the last eval's train loss, or val without it, above the best earlier one
  past the transient by RISE_Z eval-noise deviations) is an instability, not a curve to follow:
  no forecast (`instability` says why). A val rising while train falls is the gap model's.
- The evals' train losses, where given, are fitted too, as the same curve plus a constant
  offset: on data seen once they measure the same loss, so twice the points against the noise.
  Only while val is less than GAP_MIN of the loss above train at the last eval: a wider gap says
  they measure different losses (val text that differs, or data repeated and memorised), and a
  train loss falling faster than val would carry the forecast too low.
- Repeated data: when the val-train gap grows over the recent evals (those past GAP_WINDOW of the
  run, and at least the last MIN_POINTS: a run that evals every tenth of it has only three there)
  by GAP_T standard errors, and is already GAP_MIN of the loss, the law is fitted to the train
  losses and val is that plus the gap, a + b * x^p for each power p in GAP_POWERS, averaged by
  their fit as the lambdas are: linearly or faster (memorising grows with the passes over the
  data, and speeds up once it starts: 1 and 3/2), or levelling off (-1: a gap from val text that
  differs, which stops growing once the model has learnt what the train text has of its own).
  x is the lr area S; and once the gap is MEMORISING of the train loss (the doctor's "val well
  above train"), the iteration too, as more members: memorising goes on while a decaying lr adds
  little area, and on the tuning half's tiny slices val climbs fastest in a decay's last part.
  The gap's uncertainty and the spread between its members go into the band.

The constants were chosen on the tuning half of the back-test corpus
(bench/make_backtest_runs.py; `bench/forecast_backtest.py --split tuning --compare NAME=VALUE`
says what changing one does), never on the held-out half.
A schedule longer than MAX_SCHEDULE_POINTS iterations is sampled every `stride` iterations (S summed
over the samples), and D is worked out on at most DEFICIT_POINTS of them, so a run's size bounds
neither memory nor time.
Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gpttui.run import config as C
from gpttui.run.history import RunHistory
from gpttui.run.schedule import lr_array, wsd_decay_start

ANNEAL_GAIN = 0.16       # prior: loss fraction removed per unit of normalised lr decay, worked off ...
ANNEAL_GAIN_SUBWORD = 0.04   # ... the same on a vocabulary of SUBWORD_VOCAB tokens or more (BPE) ...
SUBWORD_VOCAB = 1024
ANNEAL_SD = 0.045        # ... and its spread
ANNEAL_C = 0.01          # G's scale: a drop is half worked off 1/ANNEAL_C peak-lr steps after it (beta 1) ...
ANNEAL_BETA = 1.0        # ... its power ...
ANNEAL_GAMMA = 0.6       # ... and how much a lower lr slows that: the area after a drop counts times lr^-gamma
DEFICIT_POINTS = 1024    # D is computed on at most this many points of the schedule, linear between
NOISE_REL = 0.005        # prior eval noise, as a fraction of the loss
NOISE_DOF = 2.0          # weight of that prior against the residuals, in degrees of freedom
LAMBDAS = np.linspace(-2.0, 0.5, 41)
MIN_POINTS = 4
RISE_Z = 3.0             # a rise of this many eval-noise deviations is an instability
FIT_START = 0.3          # evals before this fraction of the last one are the initial transient
BAND_Z = 1.645           # a two-sided 90% band
BAND_SCALE = 1.20        # the band's scale (split conformal) ...
MISFIT = 0.063           # ... and the law's misfit per e-fold of lr area reached, a fraction of the loss:
                         # `forecast_backtest.py --split tuning --calibrate`
GAP_WINDOW = 0.5         # the val-train gap's trend is read from evals past this fraction of the last
                         # (and from the last MIN_POINTS at least: a run with sparse evals has few there)
GAP_T = 2.0              # ... and must grow by this many standard errors ...
GAP_MIN = 0.02           # ... and already be this fraction of the loss, to be modelled
GAP_BASES = ("area", "iters")   # the gap as a power of the lr area, or (memorising) of the iterations ...
GAP_POWERS = np.array([1.0, 1.5, -1.0])   # ... to these powers (all averaged by fit); area and 1 first
MEMORISING = 0.1         # a val-train gap this fraction of the train loss or more is memorising
RISE_AHEAD = 0.01        # a forecast this fraction above the best val so far: val forecast to rise
MAX_SCHEDULE_POINTS = 2 ** 21   # a longer schedule is sampled every `stride` iterations (memory, time)
MAX_BAND = 0.2           # a 90% band wider than this fraction of the loss either side is no forecast yet


@dataclass
class Forecast:
    """The val loss expected at `iter`, with its 90% band."""

    iter: int
    val_loss: float
    low: float
    high: float
    n_evals: int   # evals the fit used
    fit_sd: float = 0.0      # the fit's own deviation (parameters, lambdas, the eval's noise) ...
    reach: float = 0.0       # ... and the loss times the e-folds of lr area it reaches past the last eval

    def to_dict(self) -> dict:
        return {"iter": self.iter, "val_loss": round(self.val_loss, 4),
                "low": round(self.low, 4), "high": round(self.high, 4)}

    @property
    def too_wide(self) -> bool:
        """The band spans more than MAX_BAND of the loss either side: a guess, not a forecast."""
        return (self.high - self.low) / 2 > MAX_BAND * abs(self.val_loss)


def rise_note(f: Forecast, iters: Sequence[int], losses: Sequence[float]) -> str | None:
    """Where the forecast is RISE_AHEAD above the best of the val losses so far (a val-train gap
    growing faster than train falls: memorising, or val text that differs), the words the doctor,
    the extend screen and the chart show alike; None otherwise."""
    best_iter, best_val = min(zip(iters, losses), key=lambda e: e[1])
    if f.val_loss <= (1 + RISE_AHEAD) * best_val:
        return None
    return (f"val forecast to rise: {f.val_loss:.3f} by iter {f.iter:,}, above its best {best_val:.3f} "
            f"(iter {best_iter:,}): more iterations may not pay")


def too_early(f: Forecast) -> str:
    """Why a forecast with too wide a band is not given, in words every screen shows alike."""
    half = (f.high - f.low) / 2
    return (f"too early to forecast iter {f.iter:,}: its 90% band would span ±{half:.3f} ({half / abs(f.val_loss):.1%} "
            f"of the loss, more than {MAX_BAND:.0%}); it narrows as evals arrive")


@dataclass
class Gap:
    """val - train = a + b * x^p, found growing: repeated data being memorised, or val text that
    differs. x is the lr area S or the iteration, relative to the last eval's; one (a, b) per basis
    in GAP_BASES and power p in GAP_POWERS, averaged with weights by their fit."""

    powers: np.ndarray          # the powers p, one per member
    by_iters: np.ndarray        # per member: x is the iteration (else the lr area)
    weights: np.ndarray         # the members' weights
    coefs: np.ndarray           # (n_members, 2): a, b per member
    covs: np.ndarray            # (n_members, 2, 2): their covariance
    s_ref: float                # the lr area ...
    i_ref: float                # ... and the iteration of the last eval, x's unit

    def at(self, s: float, it: float) -> tuple[float, float]:
        """The gap at lr area `s` and iteration `it`, and its variance (the spread between members included)."""
        x = np.where(self.by_iters, it / self.i_ref, s / self.s_ref)
        rows = np.column_stack([np.ones(len(self.powers)), x ** self.powers])
        means = np.einsum("ij,ij->i", rows, self.coefs)
        mean = float(means @ self.weights)
        var = np.einsum("ij,ijk,ik->i", rows, self.covs, rows)
        return mean, float(self.weights @ (var + (means - mean) ** 2))


@dataclass
class Fit:
    """A fitted curve: call `predict(iter)` for a forecast with its band."""

    area: np.ndarray            # lr area S(i) for i = 0, stride, 2*stride, .. up to the horizon
    deficit: np.ndarray         # annealing deficit D(i), at the same iterations
    lambdas: np.ndarray
    weights: np.ndarray
    coefs: np.ndarray           # (n_lambda, 3): c0, c1, c2 per lambda
    covs: np.ndarray            # (n_lambda, 3, 3): their covariance
    sigma: float                # eval noise
    n_points: int
    first_iter: int
    last_iter: int
    gap: Gap | None = None      # set when val is train + a growing gap
    stride: int = 1

    def _at(self, it: int) -> tuple[float, float]:
        """S and D at iteration `it` (clamped to the schedule's span)."""
        it = min(max(it, 1), (len(self.area) - 1) * self.stride)
        return (float(_sampled(self.area, it, self.stride)), float(_sampled(self.deficit, it, self.stride)))

    def _rows(self, it: int) -> np.ndarray:
        """The design rows (1, g_lambda(S), -D) of iteration `it`, one per lambda."""
        s, d = self._at(it)
        g = np.array([_g(np.array([s]), lam)[0] for lam in self.lambdas])
        return np.column_stack([np.ones_like(g), g, np.full_like(g, -d)])

    def predict(self, it: int) -> Forecast:
        rows = self._rows(it)
        preds = np.einsum("ij,ij->i", rows, self.coefs)
        mean = float(preds @ self.weights)
        param_var = np.einsum("ij,ijk,ik->i", rows, self.covs, rows)
        var = float(self.weights @ (param_var + (preds - mean) ** 2)) + self.sigma ** 2
        s = self._at(it)[0]
        if self.gap is not None:
            g, g_var = self.gap.at(s, float(it))
            mean, var = mean + g, var + g_var
        fit_sd = math.sqrt(max(var, 0.0))
        reach = abs(mean) * math.log(s / self._at(self.last_iter)[0]) if it > self.last_iter else 0.0
        if self.gap is not None and self.gap.by_iters.any() and it > self.last_iter:   # it reaches in iterations too
            reach = max(reach, abs(mean) * math.log(it / self.last_iter))
        half = band_half(fit_sd, reach)
        return Forecast(it, mean, mean - half, mean + half, self.n_points, fit_sd, reach)


def band_half(fit_sd: float, reach: float, scale: float | None = None, misfit: float | None = None) -> float:
    """The 90% band's half-width from its two parts (see the module docstring); `scale` and
    `misfit` default to BAND_SCALE and MISFIT."""
    scale = BAND_SCALE if scale is None else scale
    misfit = MISFIT if misfit is None else misfit
    return scale * BAND_Z * math.hypot(fit_sd, misfit * reach)


def _g(s: np.ndarray, lam: float) -> np.ndarray:
    return np.log(s) if abs(lam) < 1e-9 else (s ** lam - 1.0) / lam


def schedule_stride(horizon: int) -> int:
    """Every how many iterations a schedule up to `horizon` is sampled: 1 up to MAX_SCHEDULE_POINTS."""
    return max(1, -(-(horizon + 1) // MAX_SCHEDULE_POINTS))


def schedule_iters(horizon: int) -> np.ndarray:
    """The iterations a schedule up to `horizon` is sampled at (0, stride, ..., at least `horizon`)."""
    stride = schedule_stride(horizon)
    return np.arange(0, horizon + stride, stride)


def _sampled(values: np.ndarray, iters: float | np.ndarray, stride: int) -> np.ndarray:
    """A sampled curve at iterations `iters` (exact on the samples, linear between them, held
    at its ends). By index arithmetic on the even grid: no grid as long as the schedule is built."""
    x = np.clip(np.asarray(iters, float) / stride, 0, len(values) - 1)
    i = np.minimum(x.astype(int), max(len(values) - 2, 0))
    return values[i] + (x - i) * (values[np.minimum(i + 1, len(values) - 1)] - values[i])


def area_deficit(schedule: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """S(i) and D(i) for a normalised schedule sampled every `stride` iterations (see the module docstring)."""
    area = np.concatenate([[0.0], np.cumsum(schedule)[:-1]]) * stride + 1.0  # steps taken, >= 1
    drop = np.maximum.accumulate(schedule) - schedule                        # 0 in warm-up
    return area, _worked_off(drop, schedule, area)


def _worked_off(drop: np.ndarray, schedule: np.ndarray, area: np.ndarray) -> np.ndarray:
    """D(i): each drop since the last sample, times G of the lr area run since it (scaled by
    its lr^-gamma), summed. On at most DEFICIT_POINTS samples (a drop counted at the sample
    ending its stretch), in blocks of rows, so a long schedule costs neither time nor memory."""
    n = len(drop)
    idx = np.unique(np.linspace(0, n - 1, min(n, DEFICIT_POINTS)).round().astype(int))
    steps = np.diff(drop[idx], prepend=0.0)
    scale = np.maximum(schedule[idx], 1e-3) ** -ANNEAL_GAMMA   # min_lr = 0 would make it infinite
    s = area[idx]
    out = np.empty(len(idx))
    for a in range(0, len(idx), 256):
        x = np.maximum(s[a:a + 256, None] - s[None, :], 0.0) * scale   # 0 for drops still to come
        out[a:a + 256] = (1.0 - (1.0 + ANNEAL_C * x) ** -ANNEAL_BETA) @ steps
    return np.interp(np.arange(n), idx, out)


def _solve(X: np.ndarray, y: np.ndarray, prior_row: np.ndarray, prior_y: float
           ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Least squares with one prior pseudo-row: (coef, (X'X)^-1, SSE of the data rows)."""
    A = np.vstack([X, prior_row])
    b = np.concatenate([y, [prior_y]])
    try:
        inv = np.linalg.inv(A.T @ A)
    except np.linalg.LinAlgError:
        return None
    coef = inv @ A.T @ b
    return coef, inv, float(((X @ coef - y) ** 2).sum())


def anneal_gain(vocab_size: int | None) -> float:
    """The prior's gain from the lr's decay (see the module docstring) for a run on this vocabulary."""
    return ANNEAL_GAIN_SUBWORD if vocab_size is not None and vocab_size >= SUBWORD_VOCAB else ANNEAL_GAIN


def gain_note(vocab_size: int | None) -> str:
    """The prior on the gain from the lr's decay, in words the doctor shows beside the schedule."""
    which = ("vocabulary unknown" if vocab_size is None else f"a subword vocabulary of {SUBWORD_VOCAB:,} tokens or more"
             if vocab_size >= SUBWORD_VOCAB else "a character-level vocabulary")
    return f"the lr's full decay expected to take about {anneal_gain(vocab_size):.0%} off the loss ({which})"


def fit(iters: Sequence[int], losses: Sequence[float], schedule: np.ndarray,
        train_losses: Sequence[float | None] | None = None, stride: int = 1,
        vocab_size: int | None = None) -> Fit | None:
    """Fit the model on (iter, val_loss) points; None with fewer than MIN_POINTS usable ones.

    Iteration 0 (the untrained model) and the first FIT_START of the span (the fast initial
    transient) are left out; non-finite losses are ignored. `schedule` is lr(i)/peak for
    i = 0, stride, 2*stride, .. up to the furthest iteration to be predicted. With the evals' train
    losses, a val-train gap that keeps growing (repeated data, memorised) is modelled beside the law (`Gap`).
    `vocab_size` (the run's, None: unknown) sets the prior on the gain from the lr's decay.
    """
    pts = fit_points(iters, losses, train_losses)
    if pts and max(p[0] for p in pts) > (len(schedule) - 1) * stride:
        raise ValueError("schedule shorter than the evals")
    if len(pts) < MIN_POINTS or _rise(pts) is not None:
        return None
    it = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    area, deficit = area_deficit(schedule, stride)
    gap = _growing_gap(pts, area, stride)
    train = None
    if gap is not None:   # the law follows the train loss; val = train + the gap
        y = np.array([p[2] for p in pts], float)
    elif all(p[2] is not None and math.isfinite(p[2]) for p in pts) and \
            pts[-1][1] - pts[-1][2] < GAP_MIN * pts[-1][1]:
        train = np.array([p[2] for p in pts], float)
    law = _fit_law(_sampled(area, it, stride), _sampled(deficit, it, stride), y, train, anneal_gain(vocab_size))
    if law is None:
        return None
    lambdas, weights, coefs, covs, sigma = law
    return Fit(area, deficit, lambdas, weights, coefs, covs, sigma, len(y), int(it[0]), int(it[-1]), gap,
               stride)


def _fit_law(x: np.ndarray, d: np.ndarray, y: np.ndarray, train: np.ndarray | None, gain: float) -> tuple | None:
    """The law's coefficients per lambda, their weights and covariances, and the noise.

    With `train` (the evals' train losses, on data seen once), those are fitted too, as the same
    curve plus a constant offset: twice the points against the same noise."""
    l_ref = float(y[-min(3, len(y)):].mean())
    noise = NOISE_REL * l_ref
    n = len(y)
    if train is not None:
        x, d = np.concatenate([x, x]), np.concatenate([d, d])
        y = np.concatenate([y, train])
    extra = [np.concatenate([np.zeros(n), np.ones(n)])] if train is not None else []
    k = 3 + len(extra)
    # the prior on c2 as one more observation: off by one ANNEAL_SD costs one eval's noise
    prior_row = np.zeros((1, k))
    prior_row[0, 2] = noise / (ANNEAL_SD * l_ref)
    prior_y = noise / (ANNEAL_SD * l_ref) * gain * l_ref
    fits = []
    for lam in LAMBDAS:
        X = np.column_stack([np.ones_like(x), _g(x, lam), -d, *extra])
        solved = _solve(X, y, prior_row, prior_y)
        if solved is None:
            continue
        coef, inv, sse = solved
        if coef[2] < 0:          # annealing that raises the loss: hold c2 at 0
            keep = [j for j in range(k) if j != 2]
            solved = _solve(X[:, keep], y, np.zeros((1, k - 1)), 0.0)
            if solved is None:
                continue
            c, inv2, sse = solved
            coef = np.insert(c, 2, 0.0)
            inv = np.insert(np.insert(inv2, 2, 0.0, axis=0), 2, 0.0, axis=1)
        if coef[1] > 0:          # a loss that rises with training is not this model
            continue
        fits.append((lam, coef[:3], inv[:3, :3], sse))
    if not fits:
        return None
    sse = np.array([f[3] for f in fits])
    dof = max(len(y) - k, 0)
    sigma = math.sqrt((sse.min() + NOISE_DOF * noise ** 2) / (dof + NOISE_DOF))
    w = np.exp(-(sse - sse.min()) / (2 * sigma ** 2))
    w /= w.sum()
    covs = np.array([f[2] for f in fits]) * sigma ** 2
    return np.array([f[0] for f in fits]), w, np.array([f[1] for f in fits]), covs, sigma


def _rise(pts: list[tuple[int, float, float | None]]) -> str | None:
    """Why the loss counts as unstable (rising beyond its eval noise), or None."""
    use_train = all(t is not None and math.isfinite(t) for _, _, t in pts)
    y = np.array([t if use_train else v for _, v, t in pts], float)
    if len(y) < MIN_POINTS:
        return None
    noise = max(math.sqrt(float(np.mean(np.diff(y, 2) ** 2)) / 6), NOISE_REL * float(y[-1]))
    rise = float(y[-1] - y[:-1].min())
    if rise <= RISE_Z * noise:
        return None
    what = "train" if use_train else "val"
    return (f"the {what} loss has risen {rise / y[:-1].min():.1%} above its best by iter {pts[-1][0]:,} "
            f"(more than {RISE_Z:.0f}x its eval noise): unstable, lr too high?")


def fit_points(iters: Sequence[int], losses: Sequence[float | None],
               train_losses: Sequence[float | None] | None = None) -> list[tuple[int, float, float | None]]:
    """(iter, loss, train loss) of the evals a fit uses: finite, past iteration 0 and past the
    first FIT_START of their span (the initial transient)."""
    trains = list(train_losses) if train_losses is not None else [None] * len(losses)
    pts = [(int(i), float(v), t) for i, v, t in zip(iters, losses, trains)
           if i > 0 and v is not None and math.isfinite(v)]
    last = max((p[0] for p in pts), default=0)
    return [p for p in pts if p[0] >= FIT_START * last]


def instability(iters: Sequence[int], losses: Sequence[float],
                train_losses: Sequence[float | None] | None = None) -> str | None:
    """Why `fit` refuses these evals as unstable (the loss rising, not falling), or None."""
    return _rise(fit_points(iters, losses, train_losses))


def no_forecast(iters: Sequence[int], losses: Sequence[float],
                train_losses: Sequence[float | None] | None = None,
                eval_interval: int | None = None, max_iters: int | None = None) -> str:
    """Why `fit` gives these evals no forecast, in words every screen shows alike: too few past
    the transient (the rule of `fit_points` and MIN_POINTS; with the run's eval interval, where the
    first forecast comes), a rising loss, or a curve the law cannot follow."""
    n = len(fit_points(iters, losses))
    if n < MIN_POINTS:
        why = (f"too little to forecast: {n} eval{'s' * (n != 1)} past the first {FIT_START:.0%} of the run so far "
               f"(the initial transient), {MIN_POINTS} needed")
        if eval_interval and (at := _first_forecast(iters, losses, eval_interval)) is not None:
            why += (f"; the eval at iter {at:,} can give one (every {eval_interval:,})" if not max_iters or at <= max_iters
                    else f"; none before max_iters {max_iters:,} (evals every {eval_interval:,})")
        return why
    unstable = instability(iters, losses, train_losses)
    return f"no forecast: {unstable or 'the val loss is not falling over the evals past the initial transient'}"


def _first_forecast(iters: Sequence[int], losses: Sequence[float], eval_interval: int) -> int | None:
    """The first eval, every `eval_interval` iterations from the last one, at which there are enough
    evals past the transient to fit (None: the evals so far are none to count from)."""
    future = [int(i) for i, v in zip(iters, losses) if v is not None and math.isfinite(v)]
    if not future:
        return None
    last = max(future)
    for k in range(1, 4 * MIN_POINTS + 1):   # evals evenly spaced reach MIN_POINTS well before this
        future.append(last + k * eval_interval)
        if len(fit_points(future, [1.0] * len(future))) >= MIN_POINTS:
            return future[-1]
    return None


def _growing_gap(pts: list[tuple[int, float, float | None]], area: np.ndarray, stride: int) -> Gap | None:
    """A val-train gap that grows over the recent evals, clearly (judged on the fit linear in lr area)
    and by enough to matter; then fitted for every basis in GAP_BASES and power in GAP_POWERS."""
    last = pts[-1][0]
    if len(pts) < MIN_POINTS or any(t is None or not math.isfinite(t) for _, _, t in pts):
        return None
    recent = [(i, v - t) for k, (i, v, t) in enumerate(pts) if i >= GAP_WINDOW * last or k >= len(pts) - MIN_POINTS]
    s = _sampled(area, [i for i, _ in recent], stride)
    its = np.array([float(i) for i, _ in recent])
    s_ref = float(s[-1])
    g = np.array([x for _, x in recent])
    dof = max(len(g) - 2, 1)
    floor = NOISE_REL * abs(pts[-1][1]) / 2
    fits = []
    bases = GAP_BASES if g[-1] >= MEMORISING * pts[-1][2] else GAP_BASES[:1]
    members = [(b, p) for b in bases for p in GAP_POWERS]
    for b, p in members:
        X = np.column_stack([np.ones_like(s), ((its / its[-1]) if b == "iters" else (s / s_ref)) ** p])
        coef, *_ = np.linalg.lstsq(X, g, rcond=None)
        resid = g - X @ coef
        fits.append((coef, np.linalg.inv(X.T @ X), float(resid @ resid)))
    linear_coef, linear_inv, linear_sse = fits[0]
    linear_var = linear_inv[1, 1] * max(linear_sse / dof, floor ** 2)
    if linear_coef[1] - GAP_T * math.sqrt(linear_var) <= 0 or g[-1] < GAP_MIN * pts[-1][1]:
        return None
    sse = np.array([f[2] for f in fits])
    sigma = max(math.sqrt(sse.min() / dof), floor)
    w = np.exp(-(sse - sse.min()) / (2 * sigma ** 2))
    return Gap(np.array([p for _, p in members]), np.array([b == "iters" for b, _ in members]), w / w.sum(),
               np.array([f[0] for f in fits]), np.array([f[1] for f in fits]) * sigma ** 2, s_ref, float(its[-1]))


# ---------------------------------------------------------------- a run's schedule and projection

def run_schedule(h: RunHistory, cfg: C.TrainConfig | None, horizon: int, end: int) -> tuple[np.ndarray, int, str]:
    """(lr(i) for i = 0, stride, .. up to horizon, the stride, a note); without a config,
    nanoGPT's cosine shape ending at `end`."""
    grid, stride = schedule_iters(horizon), schedule_stride(horizon)
    if cfg is None:
        assumed = C.TrainConfig(max_iters=end, lr_decay_iters=end)
        note = (f"lr schedule unknown (no config): assumed nanoGPT's cosine (warm-up {assumed.warmup_iters}, "
                f"min_lr = lr/10) decaying to iter {end:,}")
        return lr_array(assumed, grid), stride, note
    sched = lr_array(cfg, grid)
    note = f"{schedule_name(cfg)} from the config"
    for earlier in _earlier_schedules(h, cfg, grid, sched):
        note += f"; {earlier}"
    recorded = [(s.iter, s.lr) for s in h.steps if s.lr is not None and 0 <= s.iter <= horizon]
    if len(recorded) >= 2:   # the lrs the run really used (live changes included), then the config's
        its = np.array([r[0] for r in recorded])
        past = grid <= its.max()
        sched[past] = np.interp(grid[past], its, [r[1] for r in recorded])
        note += " (recorded lrs up to the last step)"
    return sched, stride, note


def _earlier_schedules(h: RunHistory, cfg: C.TrainConfig, grid: np.ndarray, sched: np.ndarray) -> list[str]:
    """Put into `sched` the lrs of the sessions before the last that started under another schedule
    (a nanoGPT log appended to by a resume that changed max_iters or the decay), and say each."""
    notes = []
    for k, (s, nxt) in enumerate(zip(h.sessions, h.sessions[1:])):
        own = h.session_config(s)
        span = (grid >= (s.start_iter if k else 0)) & (grid < nxt.start_iter)
        if own is None or not span.any():
            continue
        lrs = lr_array(own, grid[span])
        if np.allclose(lrs, sched[span], rtol=1e-9, atol=0.0):
            continue
        sched[span] = lrs
        notes.append(f"iters {int(grid[span][0]):,}-{nxt.start_iter:,} ran under an earlier start's {schedule_name(own)}")
    return notes


def schedule_name(cfg: C.TrainConfig) -> str:
    """The lr schedule a config really runs, in words (decay_lr = False is constant, whatever
    lr_schedule says; wsd decaying over the whole run is a linear decay)."""
    warm = f", warm-up {cfg.warmup_iters:,}" if cfg.warmup_iters else ""
    if not cfg.decay_lr:
        return f"constant lr (decay_lr = False{warm})"
    if cfg.lr_schedule == "wsd":
        if wsd_decay_start(cfg) <= cfg.warmup_iters:
            return f"linear decay to min_lr at iter {cfg.max_iters:,}{warm}"
        return (f"warmup-stable-decay schedule (decay over the last {cfg.decay_frac:.0%} "
                f"to iter {cfg.max_iters:,}{warm})")
    return f"cosine schedule (decay to iter {cfg.lr_decay_iters:,}{warm})"


@dataclass
class Projection:
    """The forecast curve from the last eval towards max_iters, with its 90% band (for the loss chart);
    it stops where the band gets wider than MAX_BAND (`cut_short` then says so)."""

    iters: np.ndarray
    central: np.ndarray
    low: np.ndarray
    high: np.ndarray
    note: str
    cut_short: str = ""     # why it stops before max_iters; "" when it reaches it
    rises: str = ""         # rise_note at max_iters, where the forecast there is above the best val so far


def projection(h: RunHistory, points: int = 48) -> Projection | None:
    """Where val loss is heading, from the last eval to max_iters; None when max_iters is unknown
    or passed, or too few evals to fit (the chart then draws nothing rather than a guess)."""
    its, vals = h.val_curve()
    end = h.max_iters
    if not its or not end or end <= its[-1]:
        return None
    sched, stride, note = run_schedule(h, h.train_config(), end, end)
    peak = float(sched.max())
    trains = [e.train_loss for e in h.evals if e.val_loss is not None]
    f = fit(its, vals, sched / peak if peak > 0 else sched, trains, stride, h.vocab_size)
    if f is None:
        return None
    xs = np.unique(np.linspace(its[-1], end, points).round().astype(int))
    preds = [f.predict(int(x)) for x in xs]
    wide = max(next((k for k, p in enumerate(preds) if p.too_wide), len(preds)), 1)  # from the last eval on
    cut_short = "" if wide == len(preds) else f"forecast drawn to iter {int(xs[wide - 1]):,}; {too_early(preds[-1])}"
    rises = "" if cut_short else rise_note(preds[-1], its, vals) or ""
    preds = preds[:wide]
    return Projection(xs[:wide], np.array([p.val_loss for p in preds]), np.array([p.low for p in preds]),
                      np.array([p.high for p in preds]), note, cut_short, rises)
