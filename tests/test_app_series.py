"""The dashboard's bounded history: multi-resolution buckets, truncation, envelopes, EMA, ETA."""

from __future__ import annotations

import math

import numpy as np

from gpttui.analysis.live import HISTORY_STEPS, LiveRun
from gpttui.analysis.series import BUCKET_CAP, RAW_CAP, StepSeries, column_envelope, ema


def hello(it: int, t: float, **cfg) -> dict:
    config = {"max_iters": 1000, "eval_interval": 100, "eval_iters": 10, "gradient_accumulation_steps": 1,
              "batch_size": 4, "block_size": 8, **cfg}
    return {"type": "hello", "iter": it, "t": t, "start_iter": it, "config": config, "tokens_per_iter": 32,
            "max_iters": config["max_iters"], "params": {"total": 1}, "device": "cpu", "dtype": "float32"}


def step(it: int, t: float, loss: float, dt_ms: float = 100.0) -> dict:
    return {"type": "step", "iter": it, "t": t, "loss": loss, "lr": 1e-3, "dt_ms": dt_ms,
            "tokens_per_s": 320.0, "mfu": 0.1, "grad_norm": 1.0, "tokens": 32 * (it + 1)}


def test_memory_stays_bounded_and_spikes_survive_bucketing():
    s = StepSeries()
    n = 300_000
    for i in range(n):
        s.add(i, 32.0 * i, 0.1 * i, 9.0 if i == 123_457 else 2.0)
    assert len(s.raw) == RAW_CAP
    assert len(s._b[0]) < BUCKET_CAP and s.span > 1
    win = s.window()
    assert len(win) <= BUCKET_CAP
    assert win.count.sum() == n          # every step is in exactly one bucket
    assert win.hi.max() == 9.0           # the spike is kept by its bucket's max
    env = column_envelope(win.iters, win.lo, win.hi, win.mean, win.count, 80)
    assert len(env.x) <= 80 and env.hi.max() == 9.0 and env.lo.min() == 2.0


def test_zoom_reads_the_exact_recent_steps():
    s = StepSeries()
    for i in range(50_000):
        s.add(i, float(i), float(i), float(i % 7))
    win = s.window(last_n=1000)
    assert win.iters.tolist() == list(range(49_000, 50_000))
    assert (win.count == 1).all()


def test_resume_from_an_earlier_checkpoint_replaces_the_abandoned_branch():
    live = LiveRun()
    live.add(hello(0, 0.0))
    for i in range(300):
        live.add(step(i, 1.0 + i, 3.0))
    live.add({"type": "eval", "iter": 200, "t": 250.0, "train_loss": 2.9, "val_loss": 3.0})
    live.add({"type": "eval", "iter": 300, "t": 350.0, "train_loss": 2.8, "val_loss": 2.9})
    live.add(hello(200, 1000.0))      # resumed from the checkpoint at 200
    for i in range(200, 260):
        live.add(step(i, 1001.0 + i, 1.0))
    its = live.series.window().iters.tolist()
    assert its == list(range(260))       # no zig-zag: 200..299 of the old branch are gone
    assert live.eval_rows() == []        # both evals were on the abandoned branch (200 is redone)
    assert live.iter == 260
    # run time goes on from where the branch started (step 199 at 200 s); the gap between
    # sessions and the time spent on the abandoned branch are left out
    assert math.isclose(live.elapsed(), 200.0 + 260.0)


def test_history_steps_are_thinned_but_recent_ones_exact():
    live = LiveRun()
    live.add(hello(0, 0.0, max_iters=10**6))
    for i in range(3 * HISTORY_STEPS):
        live.add(step(i, float(i), 2.0))
    steps = live.history.steps
    assert len(steps) <= HISTORY_STEPS
    assert [s.iter for s in steps[-100:]] == list(range(3 * HISTORY_STEPS - 100, 3 * HISTORY_STEPS))


def test_debiased_ema_starts_at_the_first_value_and_weighs_buckets_by_count():
    m = np.array([4.0, 2.0, 2.0])
    assert ema(m, np.ones(3), 0.0).tolist() == m.tolist()
    out = ema(m, np.ones(3), 0.9)
    assert out[0] == 4.0                                   # debiased: no pull toward zero
    assert math.isclose(out[1], (0.09 * 4 + 0.1 * 2) / 0.19)
    one_bucket = ema(np.array([4.0, 2.0]), np.array([1.0, 2.0]), 0.9)
    assert math.isclose(one_bucket[1], out[2])              # a bucket of 2 equal steps = 2 steps


def test_eta_counts_the_evals_still_to_come():
    live = LiveRun()
    live.add(hello(0, 0.0))
    t = 0.0
    for i in range(150):
        t += 0.1
        if i == 100:
            live.add({"type": "eval", "iter": 100, "t": t, "train_loss": 2.0, "val_loss": 2.1})
            t += 5.0                                       # the eval stopped training for 5 s
        live.add(step(i, t, 2.0))
    assert math.isclose(live.ms_per_iter, 100.0)
    assert math.isclose(live.eval_pause(), 5.0, rel_tol=1e-6)
    # 850 iterations at 0.1 s + evals at 200..1000 (9 of them) at 5 s each
    assert math.isclose(live.eta(), 850 * 0.1 + 9 * 5.0, rel_tol=1e-6)
    rows = live.eval_rows()
    assert rows == [(100, 2.0, 2.1, 2.1 - 2.0, "best so far")]
