"""The dashboard (App.run_test) with a real engine: a full disk pauses the run and says why,
freeing space lets it go on; a learning-rate change made live is undone with u."""

from __future__ import annotations

import asyncio

import pytest
from app_helpers import quit_and_stop, record_notifications, text_of, wait_for
from kit import ckpt_iter

from gpttui.analysis.config_edit import ApplyAction
from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.engine.durable import FAULT_DISK_FULL_ENV
from gpttui.run import engine_state
from gpttui.screens.controller import ApplyConfig
from gpttui.widgets.status import StatusLine

pytestmark = pytest.mark.timeout(180)


def _state(rd) -> str:
    info = engine_state.read_info(rd)
    return info.state if info else ""


def test_a_full_disk_pauses_under_the_dashboard_and_the_resume_key_goes_on(make_run, engines, tmp_path,
                                                                            monkeypatch):
    rd = make_run(eval_interval=1000)
    engines.dirs.append(rd)
    flag = tmp_path / "disk-is-full"
    monkeypatch.setenv(FAULT_DISK_FULL_ENV, str(flag))  # the engine the app starts inherits it

    async def go() -> None:
        app = GpttuiApp(make_plan(str(rd), []))
        ctl = app.controller
        notes = record_notifications(app)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 10, 60, "10 iterations")
            flag.touch()
            await wait_for(pilot, lambda: ctl.display_state == "paused", 30, "the dashboard saying paused")
            await wait_for(pilot, lambda: any("disk full" in n for n in notes), 10, "why, on screen")
            status = app.screen.query_one(StatusLine)   # drawn at the next frame, half a second at most
            await wait_for(pilot, lambda: "paused" in text_of(status), 5, "the status line saying paused")
            # engine.json is written off the training thread (advisory): it says so a moment later
            await wait_for(pilot, lambda: engine_state.read_info(rd).reason == "disk full", 10, "engine.json")
            at = ctl.live.iter
            flag.unlink()
            await pilot.press("space")  # resume
            await wait_for(pilot, lambda: ctl.live.iter >= at + 20, 30, "training again")
            assert _state(rd) == "running"
            await quit_and_stop(pilot, app)  # stop and save
        assert app.ui_errors == []

    asyncio.run(go())
    assert ckpt_iter(rd / "ckpt.pt") > 30


def test_u_undoes_a_live_learning_rate_change(make_run, engines):
    # no eval after iteration 0: the undo point lasts until the change survives an eval, and
    # under load the tiny model once ran the 770 iterations to the next one in 2 s, unseen
    rd = make_run(eval_interval=100_000)
    engines.dirs.append(rd)

    async def go() -> None:
        app = GpttuiApp(make_plan(str(rd), []))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 10, 60, "10 iterations")
            app.post_message(ApplyConfig({"learning_rate": 0.5}, ApplyAction.LIVE))
            await wait_for(pilot, lambda: ctl.config.learning_rate == 0.5, 30, "the change applied")
            try:   # kept before the change applies; once, under load, not seen in 10 s: say what was there
                await wait_for(pilot, lambda: (rd / "ckpt_undo.pt").is_file(), 30, "the undo point kept")
            except AssertionError as e:
                raise AssertionError(f"{e}; {ctl.display_state}, iter {ctl.live.iter}, "
                                     f"{sorted(p.name for p in rd.iterdir())}") from None
            await pilot.press("u")
            await wait_for(pilot, lambda: ctl.config.learning_rate == 0.003, 30, "the old rate back")
            await wait_for(pilot, lambda: not (rd / "ckpt_undo.pt").exists(), 10, "the point used")
            await quit_and_stop(pilot, app)
        assert app.ui_errors == []

    asyncio.run(go())
    assert "learning_rate = 0.003\n" in (rd / "config.toml").read_text()
