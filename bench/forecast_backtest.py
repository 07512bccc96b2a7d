"""Back-test the val-loss forecast on complete runs it was not fitted to.

    python bench/forecast_backtest.py [--split tuning|held-out|all] [--runs] [--calibrate] [--thin K]

For each run of the corpus (bench/data/backtest/, made by bench/make_backtest_runs.py, split by
its fixed rule; the nanoGPT fixture logs in tests/fixtures/nanogpt/ are held out, the two runs
of tests/fixtures/runs/ tune) and each cut at
25%, 50% and 75% of the iteration of its last eval, the doctor judges the run as it stood at the
cut (`gpttui doctor RUN --until CUT --forecast-at LAST`) and its forecast of the last eval is
compared with the truth: the relative error, whether the stated band held it, and beside it the
error of a naive power law `a + b*t^-c` fitted to the same evals (those past the initial transient,
as the forecast: on the tuning half that fits the naive law better than all the evals do). Then,
per split and cut: mean and worst error, the naive baseline's, on how many runs the forecast beat
it, and the band's coverage, all over the cases that got a forecast; the cases with none (too few
evals, or an unstable loss: the doctor says which) are counted apart, never as successes. Per split,
how often the doctor said "val forecast to rise" (forecast.rise_note: the forecast above the best val
at the cut), how often the last eval bore it out, and the rises it did not foresee. "truth
noise" is the error the last eval's own noise alone makes: sqrt(2/pi) * sigma, sigma from the second
differences of the run's val evals over its last half, averaged over the cases forecast.

--noise-floor adds, per cut, the error the forecast makes from the eval noise alone when its law is
exactly right: each run's fit over all its evals (val only) taken as the true curve, the evals redrawn
around it with the run's own eval noise (NOISE_DRAWS times), fitted again from the cut and scored
against the true curve at the last eval. No forecast of this law beats it on these runs: it is the
evals' noise, extrapolated. (Fitting the train evals too, as the forecast does on data seen once,
lowers it by at most sqrt(2).)

--calibrate prints what the band is made of, worked out on the split's cases (every case with a
fit, also those whose band is too wide to be given): the MISFIT under which the errors are likeliest
(see forecast's module docstring), and with it, per cut, the band scale the quantile rule gives:
for each case, the factor its band needed to hold the truth; the scale is split-conformal's quantile
of those factors, the ceil(0.9 (n + 1))-th smallest, which holds >= 90% of new cases drawn like
them. forecast.MISFIT and forecast.BAND_SCALE are these figures on the tuning half (the scale: the
largest of the cuts', rounded up).

--thin K keeps every K-th eval of each run (iter 0's first, and the last), as the same run with K
times the eval interval would have them: nanoGPT's configs eval every twentieth of a run or less often.

--compare NAME=VALUE ... sets forecast's constants to those values (VALUE a Python expression, numpy
as np) and prints, per split and cut, the paired difference of each case's error from the constants
as they are: its mean and standard error, and on how many cases the change is closer. A constant is
changed when the tuning half shows it, e.g. `--split tuning --compare ANNEAL_GAIN=0.05`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from make_backtest_runs import OUT, split  # noqa: E402

from gpttui.analysis import doctor  # noqa: E402
from gpttui.analysis import forecast as F  # noqa: E402
from gpttui.run.history import RunHistory, load_run  # noqa: E402

CUTS = (0.25, 0.5, 0.75)
NANOGPT_LOGS = sorted((ROOT / "tests" / "fixtures" / "nanogpt").glob("train_log_*.txt"))
# the two gpttui runs the first forecast was fitted on: they tune, they are not held out
SEEN_RUNS = sorted((ROOT / "tests" / "fixtures" / "runs").glob("*.jsonl"))
GOAL = "held-out, cut 50%: worst <= 2%, mean <= 1%, better than naive on every run, 90% band holds >= 90%"


@dataclass
class Case:
    run: str
    split: str
    cut: float
    truth: float
    error: float | None         # |forecast - truth| / truth; None: too little to forecast
    held: bool | None           # the band held the truth
    naive: float | None         # the naive power law's error
    width: float | None = None  # the band's half-width / truth
    noise: float = 0.0          # the truth's own eval noise (relative), see the module docstring
    why: str = ""               # the doctor's verdict where there is no forecast
    floor: float | None = None  # the noise floor's mean error (--noise-floor), see the module docstring
    fit_sd: float = 0.0         # the forecast's band parts (forecast.Forecast), for --calibrate
    reach: float = 0.0
    warned: bool = False        # the forecast said "val forecast to rise" (forecast.rise_note) ...
    rose: bool = False          # ... and the truth is that far above the best val at the cut


def corpus() -> list[tuple[str, str, Path]]:
    """(name, split, path) of every run to back-test."""
    runs = [(d.name, split(d.name), d) for d in sorted(OUT.iterdir()) if (d / "metrics.jsonl").exists()] \
        if OUT.exists() else []
    return runs + [(p.name, "tuning", p) for p in SEEN_RUNS] + [(p.name, "held-out", p) for p in NANOGPT_LOGS]


def naive_power_law(its: np.ndarray, vals: np.ndarray, at: int) -> float | None:
    """a + b*t^-c by least squares (c on a grid, a and b linear, b >= 0), evaluated at `at`."""
    if len(its) < 3:
        return None
    best = None
    for c in np.geomspace(0.01, 3.0, 300):
        X = np.column_stack([np.ones(len(its)), its.astype(float) ** -c])
        coef, *_ = np.linalg.lstsq(X, vals, rcond=None)
        if coef[1] < 0:
            continue
        sse = float(((X @ coef - vals) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, coef, c)
    if best is None:
        return None
    _, (a, b), c = best
    return float(a + b * at ** -c)


def eval_noise(evs: list[tuple[int, float]]) -> float:
    """The relative noise of one val eval, from second differences over the run's last half."""
    v = np.array([x for i, x in evs if i >= evs[-1][0] / 2])
    if len(v) < 4:
        return 0.0
    return math.sqrt(float(np.mean(np.diff(v, 2) ** 2)) / 6) / float(v[-1])


NOISE_DRAWS = 30


def noise_floor(h: RunHistory, cut: float, rng: np.random.Generator) -> float | None:
    """The mean error of the forecast of the last eval from `cut` when the law is exactly right
    (see the module docstring); None when the run's own evals give no fit."""
    evs = [(e.iter, e.val_loss) for e in h.evals if e.val_loss is not None and math.isfinite(e.val_loss)]
    its = [i for i, _ in evs]
    last = its[-1]
    sched, stride, _ = F.run_schedule(h, h.train_config(), last, last)
    sched = sched / sched.max()
    truth = F.fit(its, [v for _, v in evs], sched, None, stride, h.vocab_size)
    if truth is None:
        return None
    curve = np.array([truth.predict(i).val_loss for i in its])
    sigma = eval_noise(evs) * evs[-1][1]
    seen = [k for k, i in enumerate(its) if i <= cut * last]
    errors = []
    for _ in range(NOISE_DRAWS):
        drawn = curve + rng.normal(0.0, sigma, len(curve))
        f = F.fit([its[k] for k in seen], [drawn[k] for k in seen], sched, None, stride, h.vocab_size)
        if f is not None:
            errors.append(abs(f.predict(last).val_loss - curve[-1]) / curve[-1])
    return statistics.fmean(errors) if errors else None


def cases_of(name: str, part: str, h: RunHistory, floor: bool = False) -> list[Case]:
    evs = [(e.iter, e.val_loss) for e in h.evals if e.val_loss is not None and math.isfinite(e.val_loss)]
    last, truth = evs[-1]
    noise = math.sqrt(2 / math.pi) * eval_noise(evs)
    out = []
    for cut in CUTS:
        at = int(cut * last)
        seen = [(i, v) for i, v in evs if 0 < i <= at and i >= F.FIT_START * at]
        r = doctor.diagnose(h.until(at), forecast_at=last)
        naive = naive_power_law(np.array([i for i, _ in seen]), np.array([v for _, v in seen]), last)
        f = r.forecast if r.forecast is not None and r.forecast.iter == last else None
        so_far_its, so_far_vals = [i for i, _ in evs if i <= at], [v for i, v in evs if i <= at]
        out.append(Case(
            name, part, cut, truth,
            None if f is None else abs(f.val_loss - truth) / truth,
            None if f is None else f.low <= truth <= f.high,
            None if naive is None else abs(naive - truth) / truth,
            None if f is None else (f.high - f.low) / 2 / truth, noise,
            "" if f is not None else next(x.verdict for x in r.findings if x.key == "forecast"),
            noise_floor(h, cut, np.random.default_rng(0)) if floor else None,
            0.0 if f is None else f.fit_sd, 0.0 if f is None else f.reach,
            f is not None and F.rise_note(f, so_far_its, so_far_vals) is not None,
            truth > (1 + F.RISE_AHEAD) * min(so_far_vals)))
    return out


def pct(x: float | None) -> str:
    return "   —  " if x is None else f"{x:6.2%}"


def summary(cases: list[Case], part: str) -> list[str]:
    lines = [f"{part}: {len({c.run for c in cases})} runs"]
    lines.append(f"  {'cut':>4} {'runs':>4} {'none':>4} {'mean':>7} {'worst':>7} {'naive mean':>10} "
                 f"{'naive worst':>11} {'beats naive':>11} {'band holds':>10} {'mean band':>9} {'truth noise':>11}"
                 + (f" {'noise floor':>11}" if any(c.floor is not None for c in cases) else ""))
    for cut in CUTS:
        cs = [c for c in cases if c.cut == cut]
        done = [c for c in cs if c.error is not None]
        errs = [c.error for c in done]
        naive = [c.naive for c in done if c.naive is not None]
        beats = sum(1 for c in done if c.naive is None or c.error < c.naive)
        held = sum(1 for c in done if c.held)
        floors = [c.floor for c in cs if c.floor is not None]
        lines.append(
            f"  {cut:4.0%} {len(cs):4d} {len(cs) - len(done):4d} "
            f"{pct(statistics.fmean(errs) if errs else None):>7} {pct(max(errs) if errs else None):>7} "
            f"{pct(statistics.fmean(naive) if naive else None):>10} {pct(max(naive) if naive else None):>11} "
            f"{f'{beats}/{len(done)}':>11} {f'{held}/{len(done)}':>10} "
            f"{pct(statistics.fmean(c.width for c in done) if done else None):>9} "
            f"{pct(statistics.fmean(c.noise for c in done) if done else None):>11}"
            + (f" {pct(statistics.fmean(floors) if floors else None):>11}" if any(c.floor is not None for c in cases)
               else ""))
    done = [c for c in cases if c.error is not None]
    if done:
        lines.append(f"  all cuts: band holds {sum(1 for c in done if c.held)}/{len(done)} "
                     f"({sum(1 for c in done if c.held) / len(done):.0%}); \"val forecast to rise\" said "
                     f"{sum(c.warned for c in done)} times, borne out {sum(c.warned and c.rose for c in done)}; "
                     f"rises not foreseen {sum(c.rose and not c.warned for c in done)}")
    return lines


def misfit_by_likelihood(cases: list[Case]) -> float:
    """The MISFIT under which the errors are likeliest, as normal deviations of
    fit_sd^2 + (MISFIT * reach)^2 times a common scale (profiled out)."""
    done = [c for c in cases if c.error is not None]
    err = np.array([c.error * c.truth for c in done])
    fit_var = np.array([c.fit_sd for c in done]) ** 2
    reach = np.array([c.reach for c in done])
    best = None
    for m in np.concatenate([[0.0], np.geomspace(1e-3, 3.0, 401)]):
        v = fit_var + (m * reach) ** 2
        nll = float(np.sum(np.log(float(np.mean(err ** 2 / v)) * v)))
        if best is None or nll < best[0]:
            best = (nll, float(m))
    return best[1]


def band_scale_needed(cases: list[Case], misfit: float, coverage: float = 0.9) -> float | None:
    """The quantile rule (split conformal): the BAND_SCALE under which the band (with `misfit`)
    holds `coverage` of new cases like these; None when there are too few cases to say."""
    need = sorted(c.error * c.truth / F.band_half(c.fit_sd, c.reach, 1.0, misfit)
                  for c in cases if c.error is not None and c.fit_sd > 0)
    k = math.ceil(coverage * (len(need) + 1))
    return need[k - 1] if 0 < k <= len(need) else None


def compare(cases: list[Case], changed: list[Case]) -> list[str]:
    """The paired difference of the errors, `changed` minus `cases`, over the cases both forecast."""
    lines = []
    for part in ("tuning", "held-out"):
        for cut in CUTS:
            d = [b.error - a.error for a, b in zip(cases, changed)
                 if a.split == part and a.cut == cut and a.error is not None and b.error is not None]
            if len(d) < 2:
                continue
            better = sum(1 for x in d if x < 0)
            lines.append(f"{part:<8} {cut:4.0%}: {statistics.fmean(d):+.2%} (se {statistics.stdev(d) / len(d) ** 0.5:.2%}) "
                         f"closer on {better} of {len(d)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("tuning", "held-out", "all"), default="all")
    ap.add_argument("--runs", action="store_true", help="print every run and cut, not only the summary")
    ap.add_argument("--calibrate", action="store_true",
                    help="print the band scale that holds 90%% of the split's cases (the quantile rule)")
    ap.add_argument("--noise-floor", action="store_true",
                    help="add the error the eval noise alone makes when the law is exactly right (slower)")
    ap.add_argument("--thin", type=int, default=1, metavar="K",
                    help="keep every K-th eval of each run (and its last), as a run with K times the eval interval")
    ap.add_argument("--compare", nargs="+", metavar="NAME=VALUE",
                    help="the paired difference of each case's error with forecast's constants set so")
    args = ap.parse_args()
    runs = [(name, part, load_run(path)) for name, part, path in corpus() if args.split in ("all", part)]
    for _, _, h in runs:
        h.evals = [e for k, e in enumerate(h.evals) if k % args.thin == 0 or k == len(h.evals) - 1]
    cases = [c for name, part, h in runs for c in cases_of(name, part, h, args.noise_floor)]
    if args.compare:
        saved = {}
        for item in args.compare:
            name, _, value = item.partition("=")
            saved[name] = getattr(F, name)
            setattr(F, name, eval(value, {"np": np}))
        changed = [c for name, part, h in runs for c in cases_of(name, part, h)]
        for name, value in saved.items():
            setattr(F, name, value)
        print(f"{' '.join(args.compare)} minus the constants as they are (error, paired):")
        print("\n".join(compare(cases, changed)))
        return
    if args.runs:
        print(f"{'run':<48} {'split':<8} {'cut':>4} {'error':>7} {'band':>5} {'naive':>7} {'±band':>7}")
        for c in cases:
            held = "—" if c.held is None else ("yes" if c.held else "NO")
            print(f"{c.run[:48]:<48} {c.split:<8} {c.cut:4.0%} {pct(c.error):>7} {held:>5} {pct(c.naive):>7} "
                  f"{pct(c.width):>7}  {c.why}")
        print()
    for part in ("tuning", "held-out"):
        part_cases = [c for c in cases if c.split == part]
        if part_cases:
            print("\n".join(summary(part_cases, part)))
    if args.calibrate:   # on every case with a fit, also those whose band is now too wide to give
        saved_max, F.MAX_BAND = F.MAX_BAND, math.inf
        every = [c for name, part, h in runs for c in cases_of(name, part, h)]
        F.MAX_BAND = saved_max
        misfit = misfit_by_likelihood(every)
        scales = {cut: band_scale_needed([c for c in every if c.cut == cut], misfit) for cut in CUTS}
        print(f"over these {sum(c.error is not None for c in every)} fitted cases: misfit by likelihood "
              f"{misfit:.3f} (forecast.MISFIT = {F.MISFIT}); with it, the band scale for 90% at each cut "
              + ", ".join(f"{cut:.0%} {'—' if x is None else f'{x:.2f}'}" for cut, x in scales.items())
              + f" (forecast.BAND_SCALE = {F.BAND_SCALE}, the largest)")
    print(f"goal: {GOAL}")


if __name__ == "__main__":
    main()
