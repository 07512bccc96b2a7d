"""The lr schedule: the scalar form (the trainer's, every step) and the vectorised one (a forecast
over a whole run) agree everywhere, on every kind of schedule."""

import numpy as np
import pytest

from gpttui.run import config as C
from gpttui.run.schedule import lr_array, lr_at, wsd_decay_start

BASE = C.TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=100, max_iters=100)
SCHEDULES = {
    "cosine": BASE,
    "cosine decaying before max_iters": C.replace(BASE, lr_decay_iters=60),
    "cosine without warm-up": C.replace(BASE, warmup_iters=0),
    "cosine, decay ends where warm-up does": C.replace(BASE, warmup_iters=60, lr_decay_iters=60),
    "wsd": C.replace(BASE, lr_schedule="wsd", decay_frac=0.2),
    "wsd decaying all the way": C.replace(BASE, lr_schedule="wsd", decay_frac=1.0, warmup_iters=0),
    "linear warm-up only": C.replace(BASE, warmup_iters=1000, lr_decay_iters=1000, max_iters=1000),
    "constant": C.replace(BASE, decay_lr=False),
    "nanoGPT's defaults": C.DEFAULTS,
}


@pytest.mark.parametrize("cfg", SCHEDULES.values(), ids=SCHEDULES.keys())
def test_scalar_and_vectorised_schedules_agree(cfg):
    its = np.arange(0, 2 * cfg.max_iters + 2, max(1, cfg.max_iters // 5000))
    vectorised = lr_array(cfg, its)
    scalar = np.array([lr_at(cfg, int(i)) for i in its])
    assert vectorised.shape == its.shape
    np.testing.assert_allclose(vectorised, scalar, rtol=1e-12, atol=0)


def test_cosine_and_wsd_schedules():
    cos = BASE
    assert lr_at(cos, 10) == pytest.approx(1.0)
    assert lr_at(cos, 55) == pytest.approx(0.55)
    assert lr_at(cos, 200) == pytest.approx(0.1)
    wsd = C.replace(cos, lr_schedule="wsd", decay_frac=0.2)
    assert wsd_decay_start(wsd) == pytest.approx(80)
    assert lr_at(wsd, 79) == pytest.approx(1.0)
    assert lr_at(wsd, 90) == pytest.approx(0.55)
    # extending a wsd run only lengthens the stable phase
    assert lr_at(C.replace(wsd, max_iters=200), 90) == pytest.approx(1.0)


def test_warm_up_is_linear_and_constant_ignores_it():
    assert [lr_at(BASE, i) for i in (0, 4, 9)] == pytest.approx([1 / 11, 5 / 11, 10 / 11])
    assert lr_at(C.replace(BASE, decay_lr=False), 0) == 1.0


def test_warm_up_past_the_decay_starts_as_nanogpt_does():
    """`python train.py --max_iters=20` keeps nanoGPT's warmup_iters=2000: nanoGPT trains it (the rate
    never leaves warm-up), so gpttui's start-up check takes it too; only a live change refuses it."""
    cfg = C.replace(C.DEFAULTS, max_iters=20, lr_decay_iters=20)
    assert C.validate(cfg) == []
    assert [lr_at(cfg, it) for it in (0, 19)] == [cfg.learning_rate / 2001, cfg.learning_rate * 20 / 2001]


@pytest.mark.parametrize("args,warning", [
    (["--max_iters=300", "--lr_decay_iters=3000"],   # nanoGPT's warmup_iters = 2000: 6e-4 * 301/2001 at the end
     "warning: warmup_iters 2,000 is past max_iters 300: the run ends inside its warm-up, and the lr never "
     "reaches learning_rate 0.0006 (it ends at 9e-05; set warmup_iters below max_iters)"),
    (["--lr_decay_iters=0"],
     "warning: lr_decay_iters 0 is not past warmup_iters 2,000: the lr warms up to learning_rate 0.0006, then "
     "drops at once to min_lr 6e-05 at iter 2,000, with no cosine between (nanoGPT's get_lr gives min_lr past "
     "lr_decay_iters); set lr_decay_iters = max_iters"),
    (["--max_iters=3000", "--lr_decay_iters=2000"],
     "warning: lr_decay_iters 2,000 is not past warmup_iters 2,000: the lr warms up to learning_rate 0.0006, "
     "then drops at once to min_lr 6e-05 after iter 2,000, with no cosine between (nanoGPT's get_lr divides by "
     "zero at iter 2,000); set lr_decay_iters = max_iters"),
], ids=["ends inside warm-up", "decay ends before warm-up", "decay ends where warm-up does"])
def test_a_schedule_that_never_reaches_its_peak_or_has_no_cosine_is_warned_of(capsys, args, warning):
    """The worst cosine cut short is one still warming up at its end; the lr at the end is then low
    for want of rising, not for having decayed, and the unfinished-decay measure missed it."""
    from gpttui.cli import main

    assert main(["config", *args]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == warning
    assert lr_at(C.replace(C.DEFAULTS, max_iters=300, lr_decay_iters=3000), 300) == pytest.approx(6e-4 * 301 / 2001)
