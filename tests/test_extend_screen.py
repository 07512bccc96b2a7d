"""The extend-iterations screen, driven with the pilot: type a new end, read the screen, apply.
(What a typed end means is tested directly in test_extend_plan.py.)"""

import math

import pytest
from app_helpers import UNSET, ScreenHost, flat, footer_text, pilot_test, screen_text, tiny_config, wait_for
from engine_kit import read_events
from seed_run import EVALS, SEED, TPI
from textual.widgets import Button

from gpttui.analysis.config_edit import ApplyAction
from gpttui.analysis.pace import Pace
from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.run import config as C
from gpttui.run import schedule, units
from gpttui.screens.extend import ExtendScreen


async def settle(pilot) -> None:
    """Let the forecast worker thread finish and its result reach the screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


# ---------------------------------------------------------------- the screen

@pilot_test
async def test_finished_run_extended_to_twice_its_length():
    screen = ExtendScreen(SEED, current_iter=12000, tokens_per_iter=TPI, pace=Pace(3900.0, 15.0, True, 500, 6000),
                          evals=EVALS, resume_iter=12000)
    app = ScreenHost(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        now = flat(app, "#now")
        assert "iteration 12,000 of max_iters 12,000 · cosine: warmup 500, decay to 12,000" in now
        assert "6.29B tokens seen" in now
        assert "not running: Apply resumes it from its checkpoint at iteration 12,000" in now
        assert app.screen.query_one("#apply", Button).disabled

        await pilot.press(*"24000")
        await settle(pilot)
        summary = flat(app, "#summary")
        assert "max_iters 12,000 → 24,000, lr_decay_iters 12,000 → 24,000 (+12,000 iterations, 6.29B tokens)" in summary
        assert "The rate rises again from 3.00e-05 now to" in summary
        assert "12.58B tokens seen" in summary
        # 12,000 iterations at 3.9 s plus 25 evals of 15 s: the resumed engine evaluates at 12,000
        # first, then at 12,500 .. 23,500 and at the new end
        assert f"ETA {units.human_duration(12000 * 3.9 + 25 * 15)} (at 3,900 ms/iter + 25 evals × 15.0 s)" in summary
        assert "val loss at 24,000 ≈" in flat(app, "#forecast")
        assert "── after" in flat(app, "#legend")
        await pilot.press("enter")
        await pilot.pause()
    assert app.result.action is ApplyAction.LIVE
    assert app.result.changes == {"max_iters": 24000, "lr_decay_iters": 24000}
    assert app.result.config == C.replace(SEED, max_iters=24000, lr_decay_iters=24000)


@pilot_test
async def test_an_end_too_far_to_forecast_says_so_instead_of_a_number():
    """A hundred times the run: the band from twelve thousand iterations of evals would span more
    than MAX_BAND of the loss, so the what-if says it is too early rather than print a guess."""
    screen = ExtendScreen(SEED, current_iter=12000, tokens_per_iter=TPI, pace=None, evals=EVALS, resume_iter=12000)
    app = ScreenHost(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press(*"1200000")
        await settle(pilot)
        text = flat(app, "#forecast")
        assert "val loss at 1,200,000: too early to forecast iter 1,200,000: its 90% band would span ±" in text
        assert "≈" not in text
        await pilot.press(*["backspace"] * 7, *"24000")   # a near end: a number again
        await settle(pilot)
        assert "val loss at 24,000 ≈" in flat(app, "#forecast")


@pilot_test
async def test_bad_entries_are_marked_and_cannot_be_applied():
    screen = ExtendScreen(SEED, current_iter=6000, tokens_per_iter=TPI, pace=None, evals=[])
    app = ScreenHost(screen)
    async with app.run_test(size=(100, 36)) as pilot:
        await pilot.press(*"5000")
        await settle(pilot)
        assert "✗ 5,000 is not beyond the current iteration 6,000" in flat(app, "#error")
        assert app.screen.query_one("#end").has_class("-invalid")
        assert app.screen.query_one("#apply", Button).disabled
        await pilot.press("enter", "ctrl+r")
        await pilot.pause()
        assert app.result is UNSET
        assert "ETA unknown until the run has measured its speed" in flat(app, "#summary")
        assert ("val loss at 12,000: too little to forecast: 0 evals past the first 30% of the run so far "
                "(the initial transient), 4 needed") in flat(app, "#forecast")

        await pilot.press("backspace", "backspace", "backspace", "backspace", *"+6B")
        await settle(pilot)
        assert flat(app, "#error") == ""
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None


@pilot_test
async def test_a_huge_end_typed_key_by_key_is_refused_not_a_crash():
    """'1e400' passes through '1e40' as it is typed: an end whose ETA no clock can show. The screen
    refuses an end past what gpttui trains, and says a far finish by its date."""
    screen = ExtendScreen(SEED, current_iter=6000, tokens_per_iter=TPI, pace=Pace(3900.0, 15.0, True, 500, 6000),
                          evals=EVALS)
    app = ScreenHost(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        for key in "1e400":
            await pilot.press(key)
            await settle(pilot)
            if key == "0":
                assert "more iterations than gpttui trains (at most 99,999,999)" in flat(app, "#error")
                assert app.screen.query_one("#apply", Button).disabled
        await pilot.press(*["backspace"] * 5, *"50000000")   # 50M iterations at 3.9 s: years
        await settle(pilot)
        summary = flat(app, "#summary")
        assert flat(app, "#error") == ""
        assert f"ETA {units.human_duration(50_000_000 * 3.9 + 99_988 * 15)}" in summary
        assert "y " in units.human_duration(50_000_000 * 3.9)
        assert any(f" {year}" in summary for year in range(2032, 2040))   # a date, not a weekday


@pilot_test
async def test_now_follows_a_run_that_trains_on_under_the_screen():
    """The screen said 'now (1,589)' and the lr then while the run went on to 1,872 before Apply:
    what 'now' is moves with the run, and an end it has passed becomes invalid."""
    at = {"iter": 6000}
    screen = ExtendScreen(SEED, current_iter=6000, tokens_per_iter=TPI, pace=Pace(3900.0, 15.0, True, 500, 6000),
                          evals=EVALS, follow=lambda: at["iter"])
    app = ScreenHost(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press(*"7000")
        await settle(pilot)
        assert "iteration 6,000 of max_iters 12,000" in flat(app, "#now") and "now (6,000)" in flat(app, "#legend")
        assert flat(app, "#error") == ""
        at["iter"] = 7500                     # the run trains on
        await wait_for(pilot, lambda: "iteration 7,500 of max_iters" in flat(app, "#now"), 5, "now to follow")
        assert "now (7,500)" in flat(app, "#legend")
        assert f"lr {schedule.lr_at(SEED, 7500):.2e}" in flat(app, "#now")
        assert "✗ 7,000 is not beyond the current iteration 7,500" in flat(app, "#error")
        assert app.screen.query_one("#apply", Button).disabled


@pilot_test
async def test_the_entry_hint_is_whole_at_80_columns_and_wraps_at_a_word_below():
    for width in (80, 60):
        app = ScreenHost(ExtendScreen(SEED, current_iter=6000, tokens_per_iter=TPI, pace=None, evals=EVALS))
        async with app.run_test(size=(width, 24)) as pilot:
            await settle(pilot)
            hint = screen_text(app, "#hint")
            assert " ".join(hint.split()) == "iterations (24000, +2000) or tokens (6B, +500M)"
            assert (len(hint.splitlines()) == 1) == (width == 80)


@pilot_test
async def test_token_budget_on_a_wsd_run():
    wsd = C.replace(SEED, lr_schedule="wsd")
    app = ScreenHost(ExtendScreen(wsd, current_iter=3000, tokens_per_iter=TPI, pace=Pace(100.0, 0.0, False, 500, 3000),
                                  evals=EVALS))
    async with app.run_test(size=(100, 36)) as pilot:
        await pilot.press(*"12B")
        await settle(pilot)
        n = math.ceil(12e9 / TPI)
        summary = flat(app, "#summary")
        assert f"max_iters 12,000 → {n:,}" in summary and "lr_decay_iters" not in summary
        assert "stable phase simply lengthens" in summary
        await pilot.click("#apply")
        await pilot.pause()
    assert app.result.changes == {"max_iters": n} and app.result.action is ApplyAction.LIVE


# ---------------------------------------------------------------- in the real app, with a real engine

@pytest.mark.timeout(180)
@pilot_test
async def test_e_extends_a_running_run_then_a_finished_one(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data, max_iters=3000, lr_decay_iters=3000, eval_interval=500)), [])
    app = GpttuiApp(plan)
    ctl = app.controller
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: ctl.live.iter >= 5, 60, "the engine to train")
        # pause, so the run can't end before the change lands (3000 iterations: seconds of training
        # left when the UI, lagging under load, sees iteration 5; with 300 it once ended first)
        await pilot.press("space")
        await wait_for(pilot, lambda: ctl.live.state == "paused", 40, "paused")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 5, "the extend screen")
        assert f"iteration {ctl.live.iter:,} of max_iters 3,000" in flat(app, "#now")
        await pilot.press("3", "3", "0", "0", "enter")
        await wait_for(pilot, lambda: read_events(plan.run_dir, "config"), 30, "the engine's config event")
        assert read_events(plan.run_dir, "config")[-1]["changes"] == {"max_iters": 3300, "lr_decay_iters": 3300}
        await wait_for(pilot, lambda: ctl.live.max_iters == 3300 and "/3,300" in flat(app), 5,
                       "the status line's max to change")
        await pilot.press("space")
        await wait_for(pilot, lambda: ctl.live.state == "finished" and not ctl.engine_alive, 90,
                       "the run to finish and its engine to exit")
        assert ctl.live.iter > 3000  # trained past the old end
        # finished at its max_iters: nothing to resume (r would train the last stretch again)
        assert "Resume" not in footer_text(app).split()
        await pilot.press("r")
        await pilot.pause(0.5)
        assert not ctl.engine_alive and ctl.live.state == "finished"

        # a finished run: extending resumes it from its checkpoint with the new end, counted from there
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 5, "the extend screen")
        ckpt = ctl.live.last_checkpoint_iter
        assert f"iteration {ckpt:,} of max_iters 3,300" in flat(app, "#now")
        assert f"not running: Apply resumes it from its checkpoint at iteration {ckpt:,}" in flat(app, "#now")
        await pilot.press("+", "1", "0", "enter")
        await wait_for(pilot, lambda: ctl.live.max_iters == 3310 and ctl.live.iter > 3300, 60,
                       "the resumed run to train past 3,300")
        assert ctl.live.hello["config"]["lr_decay_iters"] == 3310
        await pilot.press("x")
        await pilot.pause(0.5)
        await pilot.press("y")
        await wait_for(pilot, lambda: not ctl.engine_alive, 30, "the engine to stop")
        assert app.ui_errors == []  # checked before the app shuts down


@pilot_test
async def test_extending_a_memorising_run_warns_that_val_is_forecast_to_rise():
    """A real run memorising its data, half-way (tests/fixtures/memorising): more iterations take
    val further up, and the what-if says so beside the number."""
    from pathlib import Path

    from gpttui.run.history import load_run

    h = load_run(Path(__file__).parent / "fixtures" / "memorising").until(360)
    screen = ExtendScreen(h.train_config(), current_iter=360, tokens_per_iter=h.tokens_per_iter, pace=None,
                          evals=h.evals, resume_iter=360)
    app = ScreenHost(screen)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press(*"800")
        await settle(pilot)
        text = flat(app, "#forecast")
        assert "val loss at 800 ≈" in text
        assert "⚠ val forecast to rise: " in text and "above its best 2.478 (iter 120): more iterations may not pay" in text
