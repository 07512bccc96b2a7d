"""The dashboard (App.run_test) meeting faults with REAL engines: quit and detach, launch on a
running run attaches with the whole history, keys drive the attached engine, the engine dies
under the dashboard and r resumes from its last checkpoint."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from app_helpers import quit_and_stop, screen_text, wait_for
from engine_kit import gpttui
from kit import ckpt_iter, events

from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.ipc.client import SocketClient
from gpttui.ipc.process import EngineClient
from gpttui.run import engine_state
from gpttui.screens.confirm import ConfirmScreen
from gpttui.screens.failure import FailureScreen

pytestmark = pytest.mark.timeout(180)


def _info(rd) -> engine_state.EngineInfo:
    return engine_state.read_info(rd) or engine_state.EngineInfo(0, "", 0, 0)


def _shown(screen) -> str:
    """The text of a screen's labels, statics and buttons."""
    return " ".join(str(getattr(w, "label", None) or getattr(w.render(), "plain", w.render()))
                    for w in screen.query("Static, Label, Button"))


async def attach_status(rd) -> str:
    """What `gpttui attach RUN_DIR --status` prints (run off the app's event loop)."""
    r = await asyncio.to_thread(gpttui, "attach", str(rd), "--status")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_quit_detaches_then_launch_attaches_with_history_and_keys_work(make_run, engines):
    rd = make_run(eval_interval=100)
    engines.dirs.append(rd)

    async def first_ui() -> int:
        app = GpttuiApp(make_plan(str(rd), []))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 30, 60, "30 iterations")
            assert isinstance(ctl.engine, EngineClient)
            pid = ctl.engine.pid
            assert "(attached: a dashboard is connected;" in await attach_status(rd)
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the quit question")
            assert "Detach" in _shown(app.screen)
            await pilot.press("d")
            await wait_for(pilot, lambda: not app.is_running, 10, "the app to exit")
        # what the shell shows once the dashboard is gone
        assert f"the engine (pid {pid}) trains on" in ctl.farewell and f"gpttui attach {rd}\n" in ctl.farewell
        return pid

    pid = asyncio.run(first_ui())
    # the UI is gone; the engine noticed, checkpointed and trains on
    t0 = time.monotonic()
    while _info(rd).ui != "detached" and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    assert _info(rd).ui == "detached" and _info(rd).pid == pid
    assert "(detached: no dashboard is connected;" in asyncio.run(attach_status(rd))
    at = _info(rd).iter
    while _info(rd).iter < at + 50 and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    assert engine_state.status(rd).kind == "alive"

    async def second_ui() -> None:
        plan = make_plan(str(rd), [])
        assert plan.attach and not plan.start
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(ctl.engine, SocketClient), 30, "attached")
            await wait_for(pilot, lambda: ctl.live.iter > at + 60, 30, "live steps after the history")
            steps = [s.iter for s in ctl.live.history.steps]
            assert steps == list(range(steps[0], steps[-1] + 1))  # history + live: no gap, no twice
            assert steps[0] == 0 and ctl.live.history.evals[0].iter == 0
            assert "(attached: a dashboard is connected;" in await attach_status(rd)
            await pilot.press("space")
            await wait_for(pilot, lambda: _info(rd).state == "paused", 10, "the engine paused")
            # space toggles on what the screen shows: let the paused state reach it first
            await wait_for(pilot, lambda: ctl.live.state == "paused", 10, "the screen saying paused")
            await pilot.press("space")
            await wait_for(pilot, lambda: _info(rd).state == "running", 10, "the engine running again")
            n_ckpt = sum(e["type"] == "checkpoint" for e in events(rd))
            await pilot.press("s")
            await wait_for(pilot, lambda: sum(e["type"] == "checkpoint" for e in events(rd)) > n_ckpt, 10,
                        "a checkpoint on s")
            await quit_and_stop(pilot, app)
        assert app.ui_errors == []

    asyncio.run(second_ui())
    t0 = time.monotonic()
    while engine_state.status(rd).kind == "alive" and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    st = engine_state.status(rd)
    assert st.kind == "none" and st.info.state == "stopped"
    on_disk = [e["iter"] for e in events(rd) if e["type"] == "step"]
    assert on_disk == list(range(len(on_disk)))  # one session through detach and attach
    assert ckpt_iter(rd / "ckpt.pt") == on_disk[-1] + 1


def test_engine_killed_under_the_attached_dashboard_is_shown_and_r_resumes(make_run, engines):
    rd = make_run(eval_interval=25)
    eng = engines(rd)
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] == 25, what="a checkpoint at 25")

    async def go() -> None:
        app = GpttuiApp(make_plan(str(rd), []))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(ctl.engine, SocketClient), 30, "attached")
            await wait_for(pilot, lambda: ctl.live.iter >= 35, 30, "live steps")
            os.kill(eng.pid, signal.SIGKILL)
            # the tail of the engine's log ("iter ...") is drawn a moment after the screen opens
            await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen) and "killed" in _shown(app.screen)
                           and "iter " in _shown(app.screen), 20, "the failure screen with the log's tail")
            shown = _shown(app.screen)
            last = ckpt_iter(rd / "ckpt.pt")
            assert "killed by SIGKILL — possibly out of memory" in shown
            assert f"Last checkpoint: iteration {last:,}" in shown
            # the log's last line is in view, not below the fold
            tail = app.screen.failure.stderr_tail
            await wait_for(pilot, lambda: tail[-1].strip()[:60] in screen_text(app), 5, "the log's last line in view")
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(ctl.engine, EngineClient) and ctl.live.hello
                        and ctl.live.hello.get("start_iter") == last, 60, "a new engine resumed from it")
            await wait_for(pilot, lambda: ctl.live.iter > last + 5, 60, "training on")
            await quit_and_stop(pilot, app)
        assert app.ui_errors == []

    asyncio.run(go())
    assert engine_state.status(rd).info.state == "stopped"


class DashboardBug(Exception):
    """Stands for any bug that ends the dashboard with a traceback."""


def test_a_dashboard_that_fails_leaves_its_engine_training_as_on_ui_lost_says(make_run, engines):
    """An exception ends the app (exit code 1): the engine is not stopped as by q, but checkpoints and
    trains on detached (on_ui_lost = 'detach', the default), and the shell is told where it is."""
    rd = make_run(eval_interval=100)
    engines.dirs.append(rd)

    def fail() -> None:
        raise DashboardBug("a bug in a screen")

    async def failing_ui() -> tuple[GpttuiApp, int]:
        app = GpttuiApp(make_plan(str(rd), []))
        ctl = app.controller
        with pytest.raises(DashboardBug):
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: ctl.live.iter >= 30, 60, "30 iterations")
                pid = ctl.engine.pid
                app.call_later(fail)
                await wait_for(pilot, lambda: not app.is_running, 10, "the app to exit")
        return app, pid

    app, pid = asyncio.run(failing_ui())
    assert app.return_code == 1
    assert f"the engine (pid {pid}) saves a checkpoint and trains on" in app.controller.farewell
    assert f"gpttui attach {rd}\n" in app.controller.farewell
    t0 = time.monotonic()
    while _info(rd).ui != "detached" and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    assert _info(rd).ui == "detached" and _info(rd).pid == pid and _info(rd).state in ("running", "saving", "evaluating")
    at = _info(rd).iter
    while _info(rd).iter < at + 20 and time.monotonic() - t0 < 60:
        time.sleep(0.1)
    assert _info(rd).iter >= at + 20 and engine_state.status(rd).kind == "alive"   # training on
    assert any(e["type"] == "checkpoint" for e in events(rd))
