"""`gpttui open`: fixture logs read-only in the dashboard, several runs overlaid, the doctor
panel (d), and a running run followed live from its metrics.jsonl."""

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpttui import cli
from gpttui.run import protocol
from gpttui.run.history import MetricsWriter, load_run
from gpttui.screens.compare import CompareScreen
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.doctor import DoctorScreen
from gpttui.viewer import ViewerApp, log_times
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.overlay_chart import OverlayChart

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG_124M = FIXTURES / "train_log_fineweb_124m.txt"
LOG_40M = FIXTURES / "train_log_fineweb_40m.txt"


async def until(pilot, pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.05)


def test_open_refuses_bad_paths_in_one_line_each(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["open", str(tmp_path / "nope.txt"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path / 'nope.txt'}: no such run directory or log file",
                   f"error: {tmp_path / 'empty'}: not a run directory (no metrics.jsonl or config.toml)"]


def test_two_logs_overlay_then_dashboard_then_doctor():
    async def scenario():
        app = ViewerApp([LOG_124M, LOG_40M])
        async with app.run_test(size=(150, 45)) as pilot:
            await until(pilot, lambda: not app.loading and isinstance(app.screen, CompareScreen))
            await pilot.pause(0.2)
            screen = app.screen
            chart = screen.query_one(OverlayChart)
            assert [c.name for c in chart.curves] == [LOG_124M.name, LOG_40M.name]
            assert chart.curves[0].colour != chart.curves[1].colour
            drawn = chart.build(120, 30).plain
            assert "●" in drawn and "iteration (K)" in drawn
            assert screen.query_one(EvalTable).row_count == 21          # the 124m log's evals
            await pilot.press("down")
            await pilot.pause(0.1)
            assert screen.query_one(EvalTable).row_count == 41          # the 40m log's
            await pilot.press("a")                                     # by tokens seen
            await pilot.pause(0.2)
            chart.build(120, 30)
            assert chart.x_axis == "tokens" and chart.skipped == [LOG_40M.name]   # its tokens/iter unknown
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.pause(0.2)
            assert app.screen.query_one(EvalTable).row_count == 41
            assert app.display_state == "nanoGPT log" and not app.engine_alive
            assert app.live.history.last_iter == 20000 and app.live.elapsed() > 20 * 3600   # estimated from the time lines
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None)
            report = app.screen.report
            assert report.forecast.iter == 20000 and report.timing.evals == 40
            await pilot.press("escape")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen))
            await pilot.press("q")
        assert app.ui_errors == []
        assert app.engine is None                                      # nothing was ever started
    asyncio.run(scenario())


def test_one_log_opens_in_the_dashboard_and_control_keys_do_nothing():
    async def scenario():
        app = ViewerApp([LOG_124M])
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: not app.loading)
            await pilot.pause(0.2)
            assert isinstance(app.screen, DashboardScreen)
            assert app.screen.query_one(EvalTable).row_count == 21
            assert app.live.history.tokens_per_iter == 524_288 and app.live.tokens == 10200 * 524_288
            for key in ("space", "s", "v", "x", "r"):
                await pilot.press(key)
            await pilot.pause(0.2)
            assert app.engine is None and isinstance(app.screen, DashboardScreen)
            assert not app.send("pause")
    asyncio.run(scenario())


def test_a_running_run_is_followed_live(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    metrics = run / "metrics.jsonl"
    writer = MetricsWriter(metrics)
    writer.write(protocol.event("hello", 0, version=1, config={"max_iters": 100}, params={"nanogpt": 1000},
                                device="cpu", peak_flops=1e11, tokens_per_iter=64, start_iter=0, max_iters=100))
    writer.write(protocol.event("state", 0, state="running"))

    def step(i):
        writer.write(protocol.event("step", i, loss=3.0, lr=1e-3, dt_ms=5.0, tokens_per_s=1.0, mfu=0.1,
                                    grad_norm=1.0, tokens=(i + 1) * 64))
    for i in range(5):
        step(i)
    monkeypatch.setattr("gpttui.viewer.engine_state.status", lambda run_dir: SimpleNamespace(kind="alive"))

    async def scenario():
        app = ViewerApp([run])
        async with app.run_test(size=(140, 45)) as pilot:
            await until(pilot, lambda: not app.loading)
            assert app.live.history.last_iter == 4 and app.header_note == "read-only, live"
            for i in range(5, 12):
                step(i)
            writer.write(protocol.event("eval", 11, train_loss=2.9, val_loss=3.0, best_val_loss=3.0))
            await until(pilot, lambda: app.live.history.last_iter == 11)
            await until(pilot, lambda: app.screen.query_one(EvalTable).row_count == 1)
            assert app.display_state == "running"
    asyncio.run(scenario())
    writer.close()


def test_log_times_count_an_eval_pause_once():
    h = load_run(LOG_124M)
    times = log_times(h)
    # iter 1000 evaluates: its 29.2 s line stands for 1 slow iteration and 199 normal ones
    assert times[1000] - times[800] == pytest.approx(29.151 + 199 * 9.35, rel=0.002)
    assert times[1200] - times[1000] == pytest.approx(200 * 9.346, rel=0.001)
