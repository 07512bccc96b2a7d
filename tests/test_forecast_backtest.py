"""The forecast on the kept back-test runs (bench/data/backtest/, made by gpttui on a CPU by
bench/make_backtest_runs.py): cut at half of each held-out run, the doctor's forecast of the last
eval is made, and its stated 90% band must hold the truth on most of them; too few evals, or a
loss rising beyond its noise, get no forecast, said as such; the dashboard's projection is the
same forecast. The constants of the
forecast were chosen on the tuning half only (bench/forecast_backtest.py prints the figures)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from gpttui.analysis import doctor, forecast
from gpttui.run import config as C
from gpttui.run.history import load_run
from gpttui.run.schedule import lr_array

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from make_backtest_runs import OUT, split  # noqa: E402

HELD_OUT = sorted(d for d in OUT.iterdir() if (d / "metrics.jsonl").exists() and split(d.name) == "held-out") \
    if OUT.exists() else []


def half_cut(run_dir: Path):
    h = load_run(run_dir)
    its, vals = h.val_curve()
    return h, its[-1], vals[-1], doctor.diagnose(h.until(its[-1] // 2), forecast_at=its[-1])


def test_the_corpus_is_there_and_split():
    assert len(HELD_OUT) >= 12
    kinds = {d.name.split("-")[0] for d in HELD_OUT}
    assert kinds == {"char", "char_small", "char_tiny", "bpe"}


def test_the_band_holds_the_last_eval_on_most_held_out_runs():
    """(The errors themselves, and how they miss the issue's goals, are what
    bench/forecast_backtest.py prints; here only what the band promises.)"""
    held, abstained = [], []
    for run_dir in HELD_OUT:
        _, last, truth, r = half_cut(run_dir)
        f = r.forecast
        if f is None:   # allowed, but said, and counted against the band below
            verdict = next(x.verdict for x in r.findings if x.key == "forecast")
            assert verdict.startswith(("no forecast: ", "too early to forecast")), (run_dir.name, verdict)
            abstained.append(run_dir.name)
            continue
        assert f.iter == last, run_dir.name
        assert f.low < f.val_loss < f.high
        held.append(f.low <= truth <= f.high)
    assert len(abstained) <= len(HELD_OUT) // 10, abstained   # at half, it declines on one run in ten at most
    assert sum(held) >= 0.8 * len(HELD_OUT), f"band held on {sum(held)} of {len(HELD_OUT)} ({abstained} none)"


def test_the_band_holds_at_a_quarter_and_three_quarters_too_and_widens_with_reach():
    """The band is the fit's own deviation plus the law's misfit for how far the forecast reaches
    in lr area: at a quarter of a run it is wide and still holds; at three quarters narrow."""
    for frac in (0.25, 0.75):
        held, widths = [], []
        for run_dir in HELD_OUT:
            h = load_run(run_dir)
            its, vals = h.val_curve()
            f = doctor.diagnose(h.until(int(its[-1] * frac)), forecast_at=its[-1]).forecast
            if f is not None:
                held.append(f.low <= vals[-1] <= f.high)
                widths.append((f.high - f.low) / 2 / f.val_loss)
        assert sum(held) >= 0.8 * len(held) and len(held) >= 0.5 * len(HELD_OUT), (frac, sum(held), len(held))
        if frac == 0.25:
            quarter = np.median(widths)
    assert quarter > 2 * np.median(widths)       # three quarters: less far to go, a narrower band
    halves = ((h, h.val_curve()[0]) for h in map(load_run, HELD_OUT))
    reports = (doctor.diagnose(h.until(its[len(its) // 2])) for h, its in halves)
    r = next(r for r in reports if len(r.forecasts) == 2)   # a run whose band at 2x max_iters is narrow enough to give
    at_end, twice = r.forecasts[0], r.forecasts[1]
    assert twice.iter == 2 * at_end.iter and twice.reach > at_end.reach > 0
    assert (at_end.high - at_end.low) / 2 == pytest.approx(forecast.band_half(at_end.fit_sd, at_end.reach))
    assert forecast.band_half(at_end.fit_sd, at_end.reach) > forecast.band_half(at_end.fit_sd, 0.0)


def test_too_few_evals_get_no_forecast_and_say_so():
    h = load_run(HELD_OUT[0])
    its, _ = h.val_curve()
    r = doctor.diagnose(h.until(its[2]), forecast_at=its[-1])     # evals at 0 and two more
    f = next(f for f in r.findings if f.key == "forecast")
    assert r.forecast is None and f.verdict.startswith("too little to forecast: 2 evals past the first 30%")
    assert f"{forecast.MIN_POINTS} needed" in f.verdict


def test_a_loss_that_turns_up_gets_no_forecast_and_says_why():
    """A real run cut at half, its last eval then jumping up 15% (train and val: a blow-up, not
    memorising): the doctor declines and names it; the dashboard draws no projection."""
    h = load_run(HELD_OUT[0])
    its, _ = h.val_curve()
    now = h.until(its[len(its) // 2])
    assert doctor.diagnose(now).forecast is not None
    e = now.evals[-1]
    now.evals[-1] = dataclasses.replace(e, train_loss=e.train_loss * 1.15, val_loss=e.val_loss * 1.15)
    r = doctor.diagnose(now)
    f = next(f for f in r.findings if f.key == "forecast")
    assert r.forecast is None and f.level == "warn"
    assert f.verdict.startswith("no forecast: the train loss has risen") and "lr too high?" in f.verdict
    assert forecast.projection(now) is None


def test_a_forecast_too_vague_to_use_is_not_given_and_the_projection_stops_where_it_gets_so():
    """Cut at a quarter, some held-out runs are still in their early phase: the band to their last
    eval would span more than MAX_BAND of the loss. The doctor says so instead of a number; the
    dashboard draws the projection only as far as its band stays within MAX_BAND, and says why."""
    vague = []
    for run_dir in HELD_OUT:
        h = load_run(run_dir)
        its, _ = h.val_curve()
        now = h.until(its[-1] // 4)
        r = doctor.diagnose(now, forecast_at=its[-1])
        verdict = next(x.verdict for x in r.findings if x.key == "forecast")
        if not verdict.startswith("too early to forecast"):
            continue
        vague.append(run_dir.name)
        assert r.forecast is None and f"iter {its[-1]:,}: its 90% band would span ±" in verdict
        assert f"of the loss, more than {forecast.MAX_BAND:.0%}" in verdict
        assert all(not f.too_wide for f in r.forecasts)
        p = forecast.projection(now)
        assert p is not None and p.iters[-1] < h.max_iters and p.cut_short.startswith("forecast drawn to iter ")
        assert ((p.high - p.low) / 2 <= forecast.MAX_BAND * p.central).all()
    assert vague, "no held-out run is too early to forecast at a quarter"


@pytest.mark.parametrize("index", [0, -1])
def test_the_dashboards_projection_is_the_doctors_forecast(index):
    """The first and the last held-out run the doctor forecasts at half."""
    h = load_run([d for d in HELD_OUT if half_cut(d)[3].forecast is not None][index])
    its, _ = h.val_curve()
    now = h.until(its[len(its) // 2])
    p = forecast.projection(now)
    assert p is not None and p.iters[0] == its[len(its) // 2] and p.iters[-1] == h.max_iters
    assert (p.low < p.central).all() and (p.central < p.high).all()
    at_end = doctor.diagnose(now).forecast
    assert at_end.iter == h.max_iters
    # the same to the digits shown (the deficit is worked out on at most DEFICIT_POINTS of each's
    # schedule, and the doctor's reaches twice as far)
    assert p.central[-1] == pytest.approx(at_end.val_loss, abs=5e-4)
    assert p.high[-1] == pytest.approx(at_end.high, abs=5e-4)
    assert forecast.projection(h) is None        # finished: nothing left to project


def test_a_growing_val_train_gap_is_followed():
    """Repeated data: train keeps falling along the law while val - train grows; val is forecast
    as both, so it turns up instead of following train down."""
    its = np.arange(50, 1001, 50)
    train = 1.5 + 2.0 * its ** -0.5
    val = train + 0.0004 * its
    sched = np.ones(2001)
    f = forecast.fit(its, val, sched, train)
    assert f is not None and f.gap is not None
    truth = 1.5 + 2.0 * 2000 ** -0.5 + 0.0004 * 2000
    p = f.predict(2000)
    assert p.low <= truth <= p.high and abs(p.val_loss - truth) / truth < 0.01
    without = forecast.fit(its, val, sched)                # val alone: the law can't turn up
    assert without is None or without.predict(2000).val_loss < truth - 0.1


def test_a_gap_that_speeds_up_is_followed():
    """Memorising speeds up once it starts (the tiny slice repeated for many epochs): a gap growing
    as the lr area to the power 1.5 is followed, where a straight line through the last evals would
    put val 6% too low."""
    its = np.arange(50, 1001, 50)
    train = 1.5 + 2.0 * its ** -0.5
    val = train + 0.02 + 1e-5 * its ** 1.5
    f = forecast.fit(its, val, np.ones(2001), train)
    assert f is not None and f.gap is not None
    truth = 1.5 + 2.0 * 2000 ** -0.5 + 0.02 + 1e-5 * 2000 ** 1.5
    p = f.predict(2000)
    assert p.low <= truth <= p.high and abs(p.val_loss - truth) / truth < 0.01
    straight = val[-1] + (val[-1] - val[-5]) / (its[-1] - its[-5]) * 1000
    assert (truth - straight) / truth > 0.05


def test_a_sampled_schedule_forecasts_as_the_whole_one():
    """A schedule past MAX_SCHEDULE_POINTS is sampled every `stride` iterations: the forecast on
    those samples is the one on every iteration, within a hundredth of its band."""
    from gpttui.run import config as C
    from gpttui.run.schedule import lr_array

    cfg = C.TrainConfig(max_iters=40_000, lr_decay_iters=40_000, warmup_iters=400)
    sched = lr_array(cfg, np.arange(80_001)) / cfg.learning_rate
    its = np.arange(2_000, 20_001, 1_000)
    val = 1.2 + 3.0 * (its + 300.0) ** -0.3
    train = val - 0.01
    whole = forecast.fit(its, val, sched, train)
    sampled = forecast.fit(its, val, sched[::16], train, stride=16)
    assert whole is not None and sampled is not None
    for at in (40_000, 80_000):
        a, b = whole.predict(at), sampled.predict(at)
        assert abs(a.val_loss - b.val_loss) < 0.01 * (a.high - a.low)
        assert abs((a.high - a.low) - (b.high - b.low)) < 0.02 * (a.high - a.low)


def test_doctor_sums_step_times_over_a_long_gap_as_every_iteration():
    """The time between two logged steps far apart is the interpolated step time summed over every
    iteration between them, got from the knots alone."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        xp = np.unique(rng.integers(0, 200, rng.integers(1, 12)))
        fp = rng.random(len(xp))
        first = int(rng.integers(-20, 220))
        last = first + int(rng.integers(-2, 60))
        every = float(np.interp(np.arange(first, last + 1), xp, fp).sum())
        assert doctor._interp_sum(first, last, xp, fp) == pytest.approx(every, rel=1e-9, abs=1e-12)


def _deficit(iters: int = 3000, **kw) -> np.ndarray:
    cfg = C.TrainConfig(max_iters=iters, lr_decay_iters=iters, warmup_iters=100, learning_rate=1e-3,
                        min_lr=1e-4, **kw)
    sched = lr_array(cfg, np.arange(iters + 1))
    return forecast.area_deficit(sched / sched.max())[1]


def test_a_decay_packed_at_the_end_is_worked_off_less_by_then_than_one_spread_over_the_run():
    """The multi-power law's deficit: WSD and cosine both end at min_lr (90% down), but the WSD
    run's drop came in its last fifth, at an ever lower lr, so less of it tells in the loss by the
    end. A decay over 200,000 iterations is worked off by its end; no warm-up or constant lr counts."""
    cos, wsd = _deficit(), _deficit(lr_schedule="wsd")
    assert 0.3 < wsd[-1] < cos[-1] - 0.15 and cos[-1] < 0.9
    assert (cos[:101] == 0).all() and (wsd[:2400] == 0).all()   # warm-up; wsd's stable part
    assert (_deficit(decay_lr=False) == 0).all()
    long = _deficit(200_000)     # worked out on fewer points, linear between; a long decay is all worked off
    assert np.all(np.diff(long) >= -1e-12) and 0.85 < long[-1] <= 0.9


def test_a_run_on_bpe_tokens_is_forecast_with_the_smaller_gain_from_the_lrs_decay():
    """The real GPU log of the 124M model on web text, cut at half: its vocabulary (nanoGPT's
    'defaulting to vocab_size of GPT-2') takes the subword prior, which puts the last eval within
    2.5% where the character-level prior put it over 5% too low; the doctor and the dashboard's
    projection use the same prior."""
    h = load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt")
    assert h.vocab_size == 50304
    its, vals = h.val_curve()
    r = doctor.diagnose(h.until(its[-1] // 2), forecast_at=its[-1])
    assert r.forecast is not None and abs(r.forecast.val_loss - vals[-1]) / vals[-1] < 0.025
    assert r.forecast_note.endswith("take about 4% off the loss (a subword vocabulary of 1,024 tokens or more)")
    assert r.forecast.low <= vals[-1] <= r.forecast.high
    h.config["vocab_size"] = 65   # the same evals, said to be on characters
    char = doctor.diagnose(h.until(its[-1] // 2), forecast_at=its[-1]).forecast
    assert char is not None and (vals[-1] - char.val_loss) / vals[-1] > 0.05
    p = forecast.projection(load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt"
                                     / "train_log_fineweb_124m.txt").until(its[-1] // 2))
    assert p is not None and p.iters[-1] == 12000


def test_the_vocabulary_is_read_from_the_config_the_parameter_counts_or_the_first_loss():
    char_run = load_run(OUT / "char-s-cos-lr0.003-w20-600")          # hello: params, vocab_size 0
    assert char_run.config["vocab_size"] == 0 and char_run.vocab_size == 65
    assert load_run(OUT / "bpe-xs-cos-lr0.003-w20-312").vocab_size == 50304
    headerless = load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_40m.txt")
    assert "vocab_size" not in headerless.config and 40_000 < headerless.vocab_size < 70_000   # ln(vocab) at iter 0
    assert forecast.anneal_gain(headerless.vocab_size) == forecast.ANNEAL_GAIN_SUBWORD
    assert forecast.anneal_gain(65) == forecast.anneal_gain(None) == forecast.ANNEAL_GAIN


def test_a_gap_seen_on_evals_a_tenth_of_the_run_apart_is_followed():
    """nanoGPT's configs eval every tenth or twentieth of a run: half-way, a tenth apart, only three
    evals lie in the gap's recent window, and the gap is judged on the last MIN_POINTS instead."""
    its = np.arange(100, 501, 100)
    train = 1.5 + 2.0 * its ** -0.5
    val = train + 0.0006 * its
    f = forecast.fit(its, val, np.ones(1001), train)
    assert f is not None and f.gap is not None
    truth = 1.5 + 2.0 * 1000 ** -0.5 + 0.0006 * 1000
    p = f.predict(1000)
    assert p.low <= truth <= p.high and abs(p.val_loss - truth) / truth < 0.02
    assert p.val_loss > val[-1] + 0.1        # val turns up, as the gap says


def test_a_gap_that_grows_with_the_iterations_through_the_decay_is_followed(monkeypatch):
    """Memorising goes on while a decaying lr adds little lr area: a gap growing with the passes over
    the data (iterations) is followed through a cosine's end, where a gap of the lr area alone stalls.
    A gap under MEMORISING of the train loss is of the lr area only."""
    from gpttui.run import config as C
    from gpttui.run.schedule import lr_array

    cfg = C.TrainConfig(max_iters=2000, lr_decay_iters=2000, warmup_iters=0)
    sched = lr_array(cfg, np.arange(2001)) / cfg.learning_rate
    its = np.arange(50, 1001, 50)
    area = np.cumsum(sched)[its - 1]
    train = 1.5 + 2.0 * area ** -0.5
    val = train + 0.0004 * its
    truth_gap = 0.0004 * 2000
    f = forecast.fit(its, val, sched, train)
    assert f is not None and f.gap is not None
    gap, _ = f.gap.at(float(np.cumsum(sched)[1999]), 2000.0)
    assert abs(gap - truth_gap) < 0.1 * truth_gap
    monkeypatch.setattr(forecast, "GAP_BASES", ("area",))
    area_only = forecast.fit(its, val, sched, train)
    stalled, _ = area_only.gap.at(float(np.cumsum(sched)[1999]), 2000.0)
    assert stalled < 0.8 * truth_gap
    monkeypatch.undo()
    small = forecast.fit(its, train + 0.02 + 0.00005 * its, sched, train)   # a gap of 4% of train: not memorising
    assert small is not None and small.gap is not None and not small.gap.by_iters.any()
