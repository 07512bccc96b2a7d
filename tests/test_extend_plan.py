"""The extend screen's logic without its screen: typed ends, the `set` values they take, what
they do to the learning rate, eval counts and the val-loss forecast."""

import math

import pytest
from seed_run import EVALS, SEED, TPI, law

from gpttui.analysis.extend_plan import (
    describe_change,
    eval_points,
    extend_values,
    forecast_val_loss,
    parse_end,
    schedule_text,
)
from gpttui.analysis.forecast import FIT_START
from gpttui.run import config as C
from gpttui.run import schedule
from gpttui.run.history import Eval


def test_parse_end_iterations_plus_and_token_budgets():
    kw = dict(current_iter=6000, max_iters=12000, tokens_per_iter=TPI)
    assert parse_end("24000", **kw) == 24000
    assert parse_end("24,000", **kw) == 24000
    assert parse_end("+2000", **kw) == 14000
    assert parse_end("6B", **kw) == math.ceil(6e9 / TPI) == 11445
    assert parse_end("12.6b", **kw) == math.ceil(12.6e9 / TPI)
    assert parse_end("+500M", **kw) == 12000 + math.ceil(500e6 / TPI)
    assert parse_end("2e10 tokens", **kw) == math.ceil(2e10 / TPI)
    assert parse_end("8000", **kw) == 8000   # shortening, still ahead of the run
    for bad, reason in [("lots", "is not iterations"), ("5000", "not beyond the current iteration 6,000"),
                        ("12000", "already max_iters"), ("1.5", "must be a whole number"),
                        ("", "type a new end"), ("1B", "not beyond the current iteration")]:
        with pytest.raises(ValueError, match=reason):
            parse_end(bad, **kw)


def test_cosine_moves_lr_decay_iters_with_max_iters_wsd_does_not():
    assert extend_values(SEED, 24000) == {"max_iters": 24000, "lr_decay_iters": 24000}
    early = C.replace(SEED, lr_decay_iters=10000)       # decay ended 2,000 before the end
    assert extend_values(early, 24000) == {"max_iters": 24000, "lr_decay_iters": 22000}
    assert extend_values(C.replace(SEED, lr_schedule="wsd"), 24000) == {"max_iters": 24000}


def test_describe_cosine_rate_rises_again_from_the_end():
    after = C.replace(SEED, **extend_values(SEED, 24000))
    text = describe_change(SEED, after, 12000)
    rise = schedule.lr_at(after, 12000) / schedule.lr_at(SEED, 12000)
    assert "lr_decay_iters moves with max_iters: 12,000 → 24,000" in text
    assert f"rises again from 3.00e-05 now to {schedule.lr_at(after, 12000):.2e} ({rise:.1f}×)" in text
    assert rise > 5


def test_describe_wsd_lengthens_the_stable_phase():
    wsd = C.replace(SEED, lr_schedule="wsd", decay_frac=0.2)
    after = C.replace(wsd, max_iters=24000)
    text = describe_change(wsd, after, 6000)
    assert "stable phase simply lengthens" in text
    assert "until iteration 19,200 (was 9,600)" in text
    assert "The rate now stays 3.00e-04." in text


def test_forecast_from_a_power_law_lands_near_it():
    """Constant lr: the schedule-aware fit is a power law, so it recovers the law."""
    const = C.replace(SEED, decay_lr=False, max_iters=6000)
    after = C.replace(const, max_iters=12000)
    f = forecast_val_loss(const, after, EVALS, 12000, 6000)
    assert f is not None and f.low < law(12000) < f.high
    assert abs(f.val_loss - law(12000)) / law(12000) < 0.01
    # the initial transient (the first FIT_START of the span) is left out
    assert f.iter == 12000 and f.n_evals == sum(1 for e in EVALS if e.iter >= FIT_START * EVALS[-1].iter)
    assert forecast_val_loss(const, after, EVALS[:2], 12000, 6000) is None


def test_schedule_text_names_the_phase_boundaries():
    assert schedule_text(SEED) == "cosine: warmup 500, decay to 12,000"
    assert schedule_text(C.replace(SEED, lr_schedule="wsd", decay_frac=0.2)) == \
        "wsd: warmup 500, stable to 9,600, decay to 12,000"
    assert schedule_text(C.replace(SEED, decay_lr=False)) == "constant lr 3.0e-04"


def test_eval_points_drop_evals_without_a_usable_val_loss():
    evals = [Eval(0, None, None, None), Eval(500, 3.0, 3.1, 3.1), (1000, 2.9), (1500, float("nan")), (2000, 0.0)]
    assert eval_points(evals) == [(500, 3.1), (1000, 2.9)]
