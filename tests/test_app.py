"""The dashboard driven headless (App.run_test) with a REAL engine subprocess on a tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import (
    dashboard,
    flat,
    footer_text,
    palette_search,
    pid_alive,
    record_notifications,
    run,
    screen_text,
    text_of,
    tiny_config,
    wait_for,
    written_run,
)
from engine_kit import read_events

from gpttui.analysis.config_edit import ApplyAction
from gpttui.app import GpttuiApp
from gpttui.commands.launch import LaunchError, make_plan
from gpttui.screens.compare import CompareScreen
from gpttui.screens.confirm import Choice, ConfirmScreen
from gpttui.screens.controller import ApplyConfig
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.failure import Failure, FailureScreen
from gpttui.screens.prepare_data import PrepareScreen
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.status import StatusLine

pytestmark = pytest.mark.timeout(120)


def status(app) -> str:
    return text_of(dashboard(app).query_one(StatusLine))


def test_live_panels_pause_resume_save_and_quit(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    run_dir = plan.run_dir

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 12 and ctl.live.history.evals, 60, "steps and an eval")
            dash = dashboard(app)
            await wait_for(pilot, lambda: "params" in text_of(dash.query_one("#header")) and "ETA" in status(app), 10,
                           "the header and the status line")
            header = text_of(dash.query_one("#header"))
            assert "run" in header and "cpu" in header and "tokens/iter 64" in header and str(run_dir) in header
            assert "params" in header
            st = status(app)
            assert st.split()[0] in ("running", "evaluating", "saving") and "/100,000" in st and "tokens" in st and "ETA" in st
            chart = dash.query_one(LossChart)
            await wait_for(pilot, lambda: "iteration" in screen_text(app, "#chart"), 10,
                           "the chart")  # drawn on the chart's own timer, not per event
            assert chart.builds >= 1
            await wait_for(pilot, lambda: dash.query_one(EvalTable).row_count >= 1, 30, "the eval table")
            await wait_for(pilot, lambda: "%" in text_of(dash.query_one("#spark-mfu .caption")), 10,
                           "the MFU caption")  # "MFU 1.2%", drawn at the sparklines' own rate
            assert any("tokens per iteration" in line for line in dash.query_one(LogPane).lines)
            first = ctl.live.history.steps[0].loss
            assert 3.0 < first < 4.5 and ctl.live.loss < first  # ln(65 symbols) = 4.2 at first, then it learns

            await wait_for(pilot, lambda: "space Pause" in footer_text(app) and "Resume" not in footer_text(app), 5,
                           "the footer to offer Pause")  # rebuilt on each state change (an eval)
            await palette_search(pilot, "pause", "Pause (space)")
            await pilot.press("space")
            await wait_for(pilot, lambda: "paused" in status(app), 30, "paused on screen")
            await wait_for(pilot, lambda: "space Resume" in footer_text(app), 5, "the footer to offer Resume")
            assert "Pause" not in footer_text(app)
            paused_at = ctl.live.iter
            await pilot.pause(1.0)
            assert ctl.live.iter == paused_at, "iterations went on while paused"
            await pilot.press("space")
            await wait_for(pilot, lambda: ctl.live.iter > paused_at + 2, 30, "training to go on")
            await wait_for(pilot, lambda: "paused" not in status(app), 10, "the status line to say it")  # its own rate
            await wait_for(pilot, lambda: "space Pause" in footer_text(app), 5, "the footer to offer Pause again")

            n_ckpt = len(read_events(run_dir, "checkpoint"))
            await pilot.press("s")
            await wait_for(pilot, lambda: len(read_events(run_dir, "checkpoint")) > n_ckpt,
                           30, "a checkpoint")
            assert (run_dir / "ckpt.pt").stat().st_size > 0

            pid = ctl.engine.pid
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
            await pilot.press("enter")  # the highlighted default: stop and save
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return pid, app.ui_errors

    pid, ui_errors = run(go())
    assert ui_errors == []
    assert not pid_alive(pid)
    evs = read_events(run_dir)
    assert evs[-1]["type"] == "state" and evs[-1]["state"] == "stopped"
    last_step = max(e["iter"] for e in evs if e["type"] == "step")
    assert any(e["type"] == "checkpoint" and e["iter"] == last_step + 1 for e in evs)


def test_stop_key_asks_then_checkpoints_and_r_resumes(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    run_dir = plan.run_dir

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        notes = record_notifications(app)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 3, 60, "steps")
            # what the extend screen hands back: a live `set`, confirmed by the engine's config event
            app.post_message(ApplyConfig({"max_iters": 50000, "lr_decay_iters": 50000}, ApplyAction.LIVE))
            await wait_for(pilot, lambda: "/50,000" in status(app), 30, "the new max_iters on screen")
            assert ctl.config.max_iters == 50000
            app.post_message(ApplyConfig({"n_layer": 2}, ApplyAction.LIVE))  # not live-changeable: the engine refuses
            await wait_for(pilot, lambda: any("set refused" in n for n in notes),
                           30, "the refusal shown")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the stop question")
            await pilot.press("n")  # no: keep training
            await pilot.pause(0.5)
            assert ctl.engine_alive and isinstance(app.screen, DashboardScreen)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the stop question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not ctl.engine_alive and ctl.engine is None, 30, "the engine to stop")
            assert "stopped" in status(app)
            stopped_at = ctl.live.iter
            assert (run_dir / "ckpt.pt").exists()
            await pilot.press("r")
            await wait_for(pilot, lambda: ctl.live.iter > stopped_at + 2, 60, "the resumed run to train")
            assert ctl.live.hello["start_iter"] == stopped_at
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return app.ui_errors

    assert run(go()) == []
    starts = [e["start_iter"] for e in read_events(run_dir, "hello")]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] > 0


def _finished_run(tmp_path: Path, char_data: Path, **changes) -> Path:
    """A run trained to the end by the engine alone (no UI), as `gpttui train` would."""
    cfg_path = tiny_config(tmp_path, char_data, max_iters=20, lr_decay_iters=20, eval_interval=5, **changes)
    plan = make_plan(str(cfg_path), [])
    proc = subprocess.run([sys.executable, "-m", "gpttui.engine", str(plan.run_dir)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return plan.run_dir


def test_reopening_a_run_dir_rebuilds_the_panels_from_metrics(tmp_path, char_data):
    run_dir = _finished_run(tmp_path, char_data)
    evals = read_events(run_dir, "eval")
    assert [e["iter"] for e in evals] == [0, 5, 10, 15, 20]
    plan = make_plan(str(run_dir), [])
    plan.start = False  # look at the rebuilt history only

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 30, "the history")
            table = dashboard(app).query_one(EvalTable)
            chart = dashboard(app).query_one(LossChart)

            def drawn_width() -> int:   # the widest line the chart shows
                return max(len(line) for line in screen_text(app, "#chart").splitlines())
            await wait_for(pilot, lambda: table.row_count == 5 and "iteration" in screen_text(app, "#chart")
                           and drawn_width() == chart.content_size.width, 30, "the table and the chart")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            chart_text = screen_text(app, "#chart")
            widths = [chart.content_size.width]
            for size in ((160, 50), (80, 24)):  # resizing redraws at the new size
                await pilot.resize_terminal(*size)
                await wait_for(pilot, lambda: chart.content_size.width != widths[-1]
                               and drawn_width() == chart.content_size.width, 30, f"the chart redrawn at {size}")
                widths.append(chart.content_size.width)
                if size == (160, 50):   # room for the notes in full (at 80 columns: in symbols)
                    await wait_for(pilot, lambda: "checkpoint saved" in str(table.get_row_at(4)[4]), 30,
                                   "the notes in full")
                    wide = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            return rows, wide, status(app), chart_text, ctl.live.iter, app.ui_errors, widths

    rows, wide, st, chart_text, it, ui_errors, widths = run(go())
    assert widths[1] > widths[0] == widths[2] >= 40
    assert ui_errors == []
    assert [r[0] for r in rows] == ["0", "5", "10", "15", "20"]
    assert rows[-1][2] == f"{evals[-1]['val_loss']:.4f}"
    best = min(range(5), key=lambda i: evals[i]["val_loss"])
    assert "best so far" in wide[best][4] and "★" in rows[best][4]
    assert "checkpoint saved" in wide[-1][4] and "✓" in rows[-1][4]
    assert it == 20 and "finished" in st and "20/20" in st
    assert "iteration" in chart_text  # the step curve is drawn from the file


def test_resumed_from_earlier_checkpoint_replaces_the_abandoned_branch(tmp_path, char_data):
    run_dir = _finished_run(tmp_path, char_data)
    plan = make_plan(str(run_dir), ["--max_iters=30", "--lr_decay_iters=30"])

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: ctl.live.state == "finished" and ctl.engine is None, 90, "the run to end")
            win = ctl.live.series.window()
            return win.iters.tolist(), [r[0] for r in ctl.live.eval_rows()], app.ui_errors

    iters, eval_iters, ui_errors = run(go())
    assert ui_errors == []
    assert iters == sorted(iters) and len(iters) == len(set(iters)), "the curve zig-zags"
    assert iters[-1] == 29 and eval_iters == [0, 5, 10, 15, 20, 25, 30]


def test_engine_failure_shows_error_checkpoint_and_r_resumes(tmp_path, char_data, monkeypatch):
    cfg = tiny_config(tmp_path, char_data, eval_interval=4)
    plan = make_plan(str(cfg), [])
    monkeypatch.setenv("GPTTUI_FAULT_NAN_AT", "6")  # the engine's test hook: a NaN loss at iter 6

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen), 60, "the failure screen")
            screen = app.screen

            def screen_text() -> str:
                return " ".join(text_of(w) for w in screen.query("Static, Label"))
            await wait_for(pilot, lambda: "non-finite loss" in screen_text(), 10, "the failure screen's text")
            shown = screen_text()
            assert "non-finite loss" in shown and "iter 6" in shown
            assert "Last checkpoint: iteration 4" in shown and "exit code 1" in shown
            assert "failed" in status(app)
            await pilot.press("escape")   # the dashboard behind it offers what is left to do
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, "the dashboard")
            await wait_for(pilot, lambda: "r Resume" in footer_text(app), 5, "r Resume in the footer")
            assert "Pause" not in footer_text(app) and "Save" not in footer_text(app)
            monkeypatch.delenv("GPTTUI_FAULT_NAN_AT")
            await pilot.press("r")
            await wait_for(pilot, lambda: ctl.live.iter >= 8, 60, "the resumed run past the fault")
            assert ctl.live.hello["start_iter"] == 4
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return app.ui_errors

    assert run(go()) == []


def test_missing_data_is_prepared_from_a_typed_path_then_the_run_starts(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text("To be, or not to be, that is the question.\n" * 200)
    cfg = tiny_config(tmp_path, tmp_path / "fresh", dataset="fresh_char", eval_interval=5)
    plan = make_plan(str(cfg), [])
    assert plan.prepare is not None and plan.prepare.tokenizer == "char"

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(100, 30)) as pilot:
            from gpttui.screens.prepare_data import PrepareScreen

            await wait_for(pilot, lambda: isinstance(app.screen, PrepareScreen) and app.screen.query_one("#source"),
                           30, "the prepare screen's fields")
            await pilot.click("#source")
            await pilot.press(*str(src))
            await pilot.press("enter")
            await wait_for(pilot, lambda: ctl.live.iter >= 2, 60, "training on the prepared data")
            await pilot.press("q", "y")
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return app.ui_errors

    assert run(go()) == []
    assert (tmp_path / "fresh" / "train.bin").stat().st_size > 0
    assert (tmp_path / "fresh" / "meta.pkl").exists()
    assert (tmp_path / "run" / "config.toml").exists()


def test_a_bad_config_is_refused_before_anything_starts(tmp_path, char_data, capsys):
    cfg = tiny_config(tmp_path, char_data, n_head=3)  # 32 is not divisible by 3
    with pytest.raises(LaunchError, match="n_embd: 32 is not divisible by n_head=3"):
        make_plan(str(cfg), [])
    from gpttui.cli import main

    assert main(["launch", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "n_embd" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    assert main(["launch", str(cfg), "--batch_size=x"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_keys_for_screens_not_there_yet_notify_instead_of_crashing(tmp_path, char_data, monkeypatch):
    from gpttui.screens import dashboard as dashboard_screen

    monkeypatch.setitem(dashboard_screen.OTHER_SCREENS, "doctor", ("no_such_module", "DoctorScreen", "The run doctor"))
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    plan.start = False

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        notes = record_notifications(app)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 30)
            await pilot.press("d")
            await wait_for(pilot, lambda: notes, 10, "a notification")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: "edit the config" in flat(app), 10, "the help")
            help_text = flat(app)
            await pilot.press("escape")
            await pilot.press("q")  # no engine: quits at once
            await wait_for(pilot, lambda: not app.is_running, 30)
            return notes, help_text, app.ui_errors

    notes, help_text, ui_errors = run(go())
    assert "The run doctor is not available yet." in notes
    # help lists the keys offered now: nothing runs, so nothing to pause or save
    assert "judge the run: trends, forecast, MFU" in help_text and "edit the config" in help_text
    assert "pause training" not in help_text and "save a checkpoint now" not in help_text
    assert ui_errors == []


def test_a_restart_change_resumes_from_the_checkpoint_with_the_new_value(tmp_path, char_data):
    """What the config screen hands back for a field that can't change live (batch_size)."""
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 3, 60, "steps")
            app.post_message(ApplyConfig({"batch_size": 8}, ApplyAction.RESTART))
            await wait_for(pilot, lambda: ctl.live.hello.get("tokens_per_iter") == 128 and ctl.live.iter > 0
                           and ctl.engine_alive, 90, "the engine restarted with batch_size=8")
            await wait_for(pilot, lambda: "tokens/iter 128" in text_of(dashboard(app).query_one("#header")), 5,
                           "the header to show the new tokens/iter (it redraws with the status line)")
            header = text_of(dashboard(app).query_one("#header"))
            start = ctl.live.hello["start_iter"]
            await pilot.press("q", "y")
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return header, start, app.ui_errors

    header, start, ui_errors = run(go())
    assert ui_errors == [] and start > 0 and "tokens/iter 128" in header
    assert "batch_size = 8" in (plan.run_dir / "config.toml").read_text()


# ---------------------------------------------------------------- every screen leaves the dashboard as it was

DASHBOARD_PARTS = ("#header", "#status", "#chart", "#spark-loss", "#spark-mfu", "#spark-tps", "#spark-lr",
                   "#spark-gn", "#evals", "#log", "Footer")   # all but the CPU/RAM figures, which tick


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_every_screen_opened_and_closed_leaves_the_dashboard_as_it_was(tmp_path, char_data, size):
    """A screen's styles are loaded app-wide: unscoped, config.tcss hid the dashboard's status line."""
    run_dir = written_run(tmp_path, char_data)
    plan = make_plan(str(run_dir), [])
    plan.start = False

    def shown(app) -> dict[str, str]:
        return {part: screen_text(app, part) for part in DASHBOARD_PARTS}

    async def settled(pilot, app) -> dict[str, str]:
        """The dashboard once two reads 0.3 s apart agree and the footer has its keys: the footer
        is composed again when the bindings change, and a CI run once read it empty in between."""
        last: dict[str, str] | None = None
        for _ in range(100):
            now = shown(app)
            if now == last and "Quit" in now["Footer"]:
                return now
            last = now
            await pilot.pause(0.3)
        raise AssertionError(f"the dashboard did not settle: {last}")

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and "finished" in status(app), 30, "the history")
            before = await settled(pilot, app)
            seen: dict[str, dict[str, str]] = {}

            async def open_and_close(name: str, open_it, close_it) -> None:
                await open_it()
                await wait_for(pilot, lambda: not isinstance(app.screen, DashboardScreen), 10, f"the {name} screen")
                await pilot.pause(0.3)
                await close_it()
                await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, f"{name} closed")
                seen[name] = await settled(pilot, app)

            def keys(*names: str):
                return lambda: pilot.press(*names)

            def push(screen):
                async def push_it() -> None:
                    app.push_screen(screen)
                return push_it

            async def pop() -> None:
                app.pop_screen()

            for name, key in (("help", "question_mark"), ("config", "c"), ("extend", "e"), ("sample", "g"),
                              ("doctor", "d")):
                await open_and_close(name, keys(key), keys("escape"))
                if name == "config":   # its styles once hid the sampling pane's status line too
                    await pilot.press("g")
                    await wait_for(pilot, lambda: type(app.screen).__name__ == "SampleScreen", 10, "sampling")
                    sampling_status = app.screen.query_one("#status")
                    await wait_for(pilot, lambda: sampling_status.region.height == 1 and screen_text(app, "#status"),
                                   10, "the sampling pane's status line")
                    await pilot.press("escape")
                    await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, "sampling closed")
            await open_and_close("confirm", push(ConfirmScreen("Stop the run?", "…", [Choice(True, "Stop", "y"),
                                                                                    Choice(False, "Keep", "n")])),
                                 keys("n"))
            await open_and_close("failure", push(FailureScreen(Failure("boom", 1, checkpoint_iter=20))),
                                 keys("escape"))
            await open_and_close("prepare-data", push(PrepareScreen(tmp_path / "no-data")), keys("escape"))
            await open_and_close("compare", push(CompareScreen(ReadOnlyRuns([run_dir, run_dir]))), pop)
            return before, seen, app.ui_errors

    before, seen, ui_errors = run(go())
    assert ui_errors == []
    assert "finished" in before["#status"] and "iter 20/20" in before["#status"]
    assert run_dir.name in before["#header"] and "tokens/iter 64" in before["#header"]
    assert set(seen) == {"help", "config", "extend", "sample", "doctor", "confirm", "failure", "prepare-data",
                         "compare"}
    for name, after in seen.items():
        assert after == before, f"the {name} screen changed the dashboard"


def test_u_undoes_a_live_learning_rate_change_while_the_engine_offers_it(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data, eval_interval=100_000)), [])
    run_dir = plan.run_dir

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        shown = record_notifications(app)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 5, 60, "training")
            assert "undo" not in {a.binding.action for a in dashboard(app).active_bindings.values()}
            app.post_message(ApplyConfig({"learning_rate": 5e-4}, ApplyAction.LIVE))   # what the editor's ctrl+r posts
            await wait_for(pilot, lambda: ctl.live.undo is not None, 30, "the engine's offer to undo")
            await wait_for(pilot, lambda: any("u undoes it" in m for m in shown), 5, "the offer said")
            await palette_search(pilot, "undo", "Undo (u)")
            await pilot.press("u")
            await wait_for(pilot, lambda: any(e.get("done") for e in read_events(run_dir, "undo")), 30,
                           "the change undone")
            await wait_for(pilot, lambda: ctl.live.undo is None, 5, "no undo offered any more")
            assert ctl.config.learning_rate == 1e-3
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.is_running, 30, "the app to exit")
            return app.ui_errors

    assert run(go()) == []
