"""One ETA and one forecast rule, whoever says it: the status line, the doctor (d) and the
extend screen (e) give the same ETA for the same moment, none before the run has timed enough
steps, and the same words for why there is no val-loss forecast yet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from app_helpers import TINY, ScriptedEngine, dashboard, flat, pilot_test, text_of, wait_for

from gpttui.analysis import pace
from gpttui.analysis.live import LiveRun
from gpttui.app import GpttuiApp, LaunchPlan
from gpttui.run import config as C
from gpttui.run import layout, protocol
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.doctor import DoctorScreen
from gpttui.screens.extend import ExtendScreen
from gpttui.widgets.status import StatusLine

pytestmark = pytest.mark.timeout(120)

MAX_ITERS, EVAL_EVERY = 5000, 250
SLOW, FAST = 9, 0.1           # the thread tuner's first window: 9 iterations of ~0.6 s, then 0.1 s each
EVAL_S = 3.0


def events(last: int) -> list[dict[str, Any]]:
    """A run up to iteration `last` (done = last + 1) as the engine reports it: slow first
    iterations, an eval every EVAL_EVERY that stops training EVAL_S."""
    cfg = {**TINY, "max_iters": MAX_ITERS, "lr_decay_iters": MAX_ITERS, "eval_interval": EVAL_EVERY,
           "eval_iters": 20}
    t = 1000.0
    out = [{**protocol.event("hello", 0, version=1, config=cfg, params={"nanogpt": 14_000}, device="cpu",
                             dtype="float32", peak_flops=1e11, tokens_per_iter=64, start_iter=0,
                             max_iters=MAX_ITERS), "t": t},
           {**protocol.event("state", 0, state="running"), "t": t}]
    for i in range(last + 1):
        if i % EVAL_EVERY == 0:
            t += EVAL_S if i else 13.0   # the first eval also pays the start-up
            out.append({**protocol.event("eval", i, train_loss=2.0, val_loss=2.1 - i / 1e4), "t": t})
        dt = 0.6 if i < SLOW else FAST
        t += dt
        out.append({**protocol.event("step", i, loss=2.0, lr=1e-3, dt_ms=dt * 1000, tokens_per_s=64 / dt,
                                     mfu=0.01, grad_norm=1.0, tokens=64 * (i + 1)), "t": t})
    return out


def live_at(last: int) -> LiveRun:
    live = LiveRun()
    live.add_all(events(last))
    return live


def test_no_eta_from_the_first_iterations_then_the_steady_pace_with_the_evals_to_come():
    assert live_at(8).eta() is None      # (was 4h 01m in a walkthrough of the demo)
    assert live_at(pace.ETA_WARMUP + pace.ETA_MIN_STEPS - 2).eta() is None
    live = live_at(455)
    # 4,544 iterations at 0.1 s, and the evals at 500, 750, .. 4,750 and at the end (19) at 3 s each
    assert live.eta() == pytest.approx(4544 * FAST + 19 * EVAL_S, rel=1e-6)


def test_evals_to_come_count_the_one_now_unless_it_ran_and_the_one_at_the_end():
    assert pace.evals_to_come(6000, 12000, 500, evaluated_at=6000) == 12   # 6,500 .. 12,000
    assert pace.evals_to_come(6000, 12000, 500, evaluated_at=None) == 13   # a resume evaluates at 6,000 again
    assert pace.evals_to_come(6001, 6499, 500) == 1                          # only the end's
    assert pace.evals_to_come(100, 100, 500) == 0


def run_dir(tmp_path: Path, char_data: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    cfg = C.replace(C.DEFAULTS, **{**TINY, "out_dir": str(d), "data_dir": str(char_data), "max_iters": MAX_ITERS,
                                   "lr_decay_iters": MAX_ITERS, "eval_interval": EVAL_EVERY, "eval_iters": 20})
    C.save(cfg, d / layout.CONFIG)
    return d


async def scroll_to(pilot, text: str) -> None:
    """Scroll the doctor's report down until `text` shows, and a few lines more."""
    for _ in range(60):
        if text in flat(pilot.app, "#doctor"):
            break
        await pilot.press("down")
    for _ in range(4):
        await pilot.press("down")
    await pilot.pause()


def eta_said(text: str) -> str:
    m = re.search(r"ETA (\d+h \d+m|\d+m \d+s|\d+s)", text)
    assert m, f"no ETA in {text!r}"
    return m.group(1)


@pilot_test
async def test_status_line_doctor_and_extend_say_the_same_eta(tmp_path, char_data):
    d = run_dir(tmp_path, char_data)
    app = GpttuiApp(LaunchPlan(d, C.load(d), start=False))
    ctl = app.controller
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not ctl.loading, 30, "the history read")
        ctl.engine = ScriptedEngine(events(455))
        await wait_for(pilot, lambda: ctl.live.iter == 456, 30, "the engine's events")
        status = dashboard(app).query_one(StatusLine)
        await wait_for(pilot, lambda: "ETA" in text_of(status), 10, "the ETA")
        eta = eta_said(text_of(status))

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None, 60,
                       "the doctor's report")
        await scroll_to(pilot, "to max_iters")   # the time section is below the fold at 80x24
        assert f"ETA {eta} to max_iters" in flat(app, "#doctor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, "back")

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 10, "the extend screen")
        await wait_for(pilot, lambda: "ETA" in flat(app, "#summary"), 10, "extend's ETA")
        assert eta_said(flat(app, "#summary")) == eta
        assert "19 evals × 3.0 s" in flat(app, "#summary")
        await pilot.press("escape")
        await pilot.pause()
        assert app.ui_errors == []


@pilot_test
async def test_extend_and_the_doctor_give_the_same_reason_for_no_forecast(tmp_path, char_data):
    """The walkthrough's case: evals at 0 and 250 at iteration 393."""
    d = run_dir(tmp_path, char_data)
    app = GpttuiApp(LaunchPlan(d, C.load(d), start=False))
    ctl = app.controller
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not ctl.loading, 30, "the history read")
        ctl.engine = ScriptedEngine(events(392))
        await wait_for(pilot, lambda: ctl.live.iter == 393, 30, "the engine's events")
        said = "too little to forecast: 1 eval past the first 30% of the run so far (the initial transient), 4 needed"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 10, "the extend screen")
        await wait_for(pilot, lambda: "too little" in flat(app, "#forecast"), 20, "extend's forecast line")
        assert said in flat(app, "#forecast")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, "back")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None, 60,
                       "the doctor's report")
        await scroll_to(pilot, "forecast")
        assert said in flat(app, "#doctor")
        await pilot.press("escape")
        await pilot.pause()
        assert app.ui_errors == []
