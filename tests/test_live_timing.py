"""What the status line and extend say about time: training time without the stopped and paused
gaps, and what an eval costs, from a live run's events and from a nanoGPT log."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import flat, pilot_test
from textual.app import App

from gpttui.analysis import doctor
from gpttui.analysis.live import LiveRun
from gpttui.analysis.opened_run import open_source
from gpttui.widgets import fmt
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import Machine

LOG_124M = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt"


def step(it: int, t: float) -> dict:
    return {"type": "step", "iter": it, "t": t, "loss": 3.0, "dt_ms": 1000.0}


def test_elapsed_leaves_out_the_time_paused_and_stopped():
    live = LiveRun()
    live.add_all([
        {"type": "hello", "iter": 0, "t": 0.0, "start_iter": 0}, step(0, 1.0),
        {"type": "state", "iter": 1, "t": 2.0, "state": "paused"},
        {"type": "state", "iter": 1, "t": 62.0, "state": "running"}, step(1, 63.0),
        {"type": "state", "iter": 2, "t": 64.0, "state": "stopped"},
        # an hour later the run is resumed
        {"type": "hello", "iter": 2, "t": 3664.0, "start_iter": 2}, step(2, 3665.0),
    ])
    assert live.elapsed() == pytest.approx(64 - 60 + 1)
    assert live.paused_for() == pytest.approx(60)
    assert live.stopped_s == pytest.approx(3600)
    assert live.series.raw[-1][2] == pytest.approx(5)     # the chart's run-time axis agrees
    # paused now: the clock stands still while the wall clock runs on
    live.add({"type": "state", "iter": 3, "t": 3666.0, "state": "paused"})
    assert live.elapsed(now=4000.0) == pytest.approx(6)
    assert live.paused_for(now=4000.0) == pytest.approx(60 + 334)


def test_a_resumed_engines_start_is_not_counted_as_training():
    """The engine says 'starting' before its hello: the time stopped ran to that event, and went into
    the training time (a run stopped 20 s read 'elapsed 1m 03s (+18s on pause)', nothing stopped)."""
    live = LiveRun()
    live.add_all([
        {"type": "state", "iter": 0, "t": 0.0, "state": "starting"},
        {"type": "hello", "iter": 0, "t": 1.0, "start_iter": 0}, step(0, 2.0), step(1, 3.0),
        {"type": "state", "iter": 2, "t": 4.0, "state": "stopped"},
        {"type": "state", "iter": 2, "t": 24.0, "state": "starting"},    # r, twenty seconds later
        {"type": "hello", "iter": 2, "t": 25.0, "start_iter": 2}, step(2, 26.0),
    ])
    assert live.stopped_s == pytest.approx(21)          # 4 -> 25: stopped, then the new engine starting
    assert live.elapsed() == pytest.approx(3 + 1)       # 1 -> 4 and 25 -> 26
    # the doctor's duration agrees: its sessions end where their engine stopped, not where the next started
    assert doctor.diagnose(live.history).timing.duration_s == pytest.approx(3 + 1)


def test_an_evals_cost_from_a_nanogpt_log_agrees_with_the_doctor():
    """A log line stands for log_interval iterations; the eval's pause is not those iterations."""
    live = open_source(LOG_124M, 0).live
    said = doctor.diagnose(live.history).timing.eval_pause_s   # 19.9 s each
    assert said is not None
    assert live.eval_pause() == pytest.approx(said, rel=0.1)


def two_sessions(end: str, t_end: float) -> LiveRun:
    """A run trained 4 s, stopped an hour, trained again, then `end` at `t_end`."""
    live = LiveRun()
    live.add_all([
        {"type": "hello", "iter": 0, "t": 0.0, "start_iter": 0, "max_iters": 10}, step(0, 1.0),
        {"type": "state", "iter": 1, "t": 4.0, "state": "stopped"},
        {"type": "hello", "iter": 1, "t": 3604.0, "start_iter": 1, "max_iters": 10}, step(1, 3605.0),
        {"type": "state", "iter": 2, "t": t_end, "state": end},
    ])
    return live


async def status_shown(live: LiveRun, state: str, now: float) -> str:
    """The status line's text for `live` in `state`, its clock at `now`."""
    class Host(App[None]):
        machine = Machine(clock=lambda: now)

        def compose(self):
            yield StatusLine(id="status")

    app = Host()
    async with app.run_test(size=(120, 3)) as pilot:
        app.query_one(StatusLine).show(live, state)
        await pilot.pause()
        return flat(app)


@pilot_test
async def test_the_status_line_shows_training_time_and_the_time_stopped_apart():
    shown = await status_shown(two_sessions("finished", 3608.0), "finished", 3608.0)
    assert f"elapsed {fmt.duration(8)} (+{fmt.duration(3600)} stopped)" in shown


@pilot_test
async def test_the_time_paused_is_said_on_pause_and_the_time_stopped_as_stopped():
    shown = await status_shown(two_sessions("paused", 3606.0), "paused", 3606.0 + 90)
    assert f"(+{fmt.duration(3600)} stopped, {fmt.duration(90)} on pause)" in shown


def test_the_doctor_counts_a_pause_the_engine_said_even_where_an_eval_falls_in_it():
    """A pause held at an eval's iteration: the step gap holds the pause and the eval, and the doctor
    took all of it for the eval ('paused 1s' beside a status line's 18 s on pause). The engine's
    paused/running states say how long it stood."""
    events = [{"type": "hello", "iter": 0, "t": 0.0, "start_iter": 0, "config": {"eval_interval": 100}}]
    events += [{**step(i, 1.0 + 0.1 * i), "dt_ms": 100.0} for i in range(100)]   # 0.1 s an iteration
    events += [{"type": "state", "iter": 100, "t": 11.0, "state": "paused"},
               {"type": "state", "iter": 100, "t": 29.0, "state": "running"},   # 18 s on pause
               {"type": "eval", "iter": 100, "t": 31.0, "train_loss": 2.0, "val_loss": 2.1}]   # a 2 s eval
    events += [{**step(i, 31.1 + 0.1 * (i - 100)), "dt_ms": 100.0} for i in range(100, 200)]
    live = LiveRun()
    live.add_all(events)
    t = doctor.diagnose(live.history).timing
    assert t.paused_s == pytest.approx(18.0, abs=0.2) == pytest.approx(live.paused_for(), abs=0.2)
    assert t.eval_pause_s == pytest.approx(2.0, abs=0.2)
