"""The extend screen states the run's optimizer next to its schedule, and Muon's lr now."""

import pytest
from app_helpers import ScreenHost, flat, pilot_test
from seed_run import EVALS, SEED, TPI

from gpttui.analysis.pace import Pace
from gpttui.run import config as C
from gpttui.run import schedule
from gpttui.screens.extend import ExtendScreen


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
@pilot_test
async def test_the_extend_screen_states_the_optimizer(optimizer):
    cfg = C.replace(SEED, optimizer=optimizer, muon_lr=0.02)
    screen = ExtendScreen(cfg, current_iter=6000, tokens_per_iter=TPI, pace=Pace(3900.0, 15.0, True, 500, 6000),
                          evals=EVALS, resume_iter=6000)
    app = ScreenHost(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        now = flat(app, "#now")
        assert f"of max_iters 12,000 · cosine: warmup 500, decay to 12,000 · {optimizer}" in now
        lr = schedule.lr_at(cfg, 6000)
        assert f"lr {lr:.2e}" in now
        assert ("Muon lr" in now) == (optimizer == "muon")
        if optimizer == "muon":
            assert f"Muon lr {lr * 0.02 / cfg.learning_rate:.2e}" in now
