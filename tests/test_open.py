"""`gpttui open`: fixture logs read-only in the dashboard, several runs overlaid, the doctor
panel (d), and a running run followed live from its metrics.jsonl."""

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from app_helpers import flat, screen_text, wait_for

from gpttui import cli
from gpttui.analysis.opened_run import log_clock, open_source
from gpttui.app import GpttuiApp
from gpttui.run import nanogpt_log, protocol
from gpttui.run.history import load_run
from gpttui.run.metrics import MetricsWriter
from gpttui.screens.compare import CompareScreen
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.doctor import DoctorScreen
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.overlay_chart import OverlayChart

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG_124M = FIXTURES / "train_log_fineweb_124m.txt"
LOG_40M = FIXTURES / "train_log_fineweb_40m.txt"
# the dashboard's keys that control a run: action -> key
CONTROL_KEYS = {"pause": "space", "unpause": "space", "save": "s", "evaluate": "v", "stop": "x", "resume_run": "r",
                "undo": "u", "open('config')": "c"}


def offered(screen) -> set[str]:
    """The actions of the keys the screen offers now (in its footer or not)."""
    return {b.binding.action for b in screen.active_bindings.values()}


def test_open_refuses_bad_paths_in_one_line_each(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["open", str(tmp_path / "nope.txt"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {tmp_path / 'nope.txt'}: no such run directory or log file",
                   f"error: {tmp_path / 'empty'}: not a run directory (no metrics.jsonl or config.toml)"]
    garbage = tmp_path / "garbage.bin"          # it opened a dashboard of nanoGPT's defaults, "no events"
    garbage.write_bytes(bytes(range(256)) * 20)
    assert cli.main(["open", str(garbage)]) == 2
    assert capsys.readouterr().err == f"error: {garbage}: binary data, not a log: expected a nanoGPT log, " \
        "a metrics.jsonl or a run directory\n"
    for log in FIXTURES.glob("*.txt"):         # every real log is text, as written by each encoding
        text = log.read_text(encoding="utf-8")
        for encoded in (text.encode(), "\ufeff".encode() + text.encode(), text.encode("utf-16")):
            assert nanogpt_log.is_text(encoded[:4096]), log.name



def test_a_10k_iteration_log_at_80x24_shows_every_eval_note_beside_its_losses():
    """The eval table of the 124M log at 80x24 was 3 cells too wide: the last eval's '★ ✓' sat
    under the scrollbar, half hidden, and a horizontal scrollbar took a row."""
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading and isinstance(app.screen, DashboardScreen)
                           and app.screen.query_one(EvalTable).row_count == 21, 60)
            table = app.screen.query_one(EvalTable)
            await wait_for(pilot, lambda: table.scroll_y == table.max_scroll_y > 0, 10, "the last evals in view")
            await wait_for(pilot, lambda: "10,000" in screen_text(app, "#evals").splitlines()[-1], 10,
                           "the last eval drawn")
            assert not table.show_horizontal_scrollbar
            rows = screen_text(app, "#evals").splitlines()
            room = table.scrollable_content_region.width   # left of the scrollbar
            last = rows[-1][:room].split()
            assert last[:3] == ["10,000", "3.3852", "3.3581"] and last[-2:] == ["★", "✓"]   # best so far, saved
            assert table.border_subtitle == "★ best so far  ✓ checkpoint saved"
    asyncio.run(scenario())


def test_two_logs_overlay_then_dashboard_then_doctor():
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([LOG_124M, LOG_40M]))
        ctl = app.controller
        async with app.run_test(size=(150, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, CompareScreen)
                           and app.screen.query_one(OverlayChart).curves, 60)
            await pilot.pause(0.2)
            screen = app.screen
            chart = screen.query_one(OverlayChart)
            assert [c.name for c in chart.curves] == [LOG_124M.name, LOG_40M.name]
            assert chart.curves[0].colour != chart.curves[1].colour
            drawn = chart.build(120, 30).plain
            assert "●" in drawn and "iteration" in drawn and "10K" in drawn   # round ticks, K-suffixed
            assert screen.query_one(EvalTable).row_count == 21          # the 124m log's evals
            await pilot.press("down")
            await wait_for(pilot, lambda: screen.query_one(EvalTable).row_count == 41, 10, "the 40m log's evals")
            await pilot.press("a")                                     # by tokens seen
            await wait_for(pilot, lambda: chart.x_axis == "tokens", 10, "the tokens axis")
            chart.build(120, 30)
            assert chart.x_axis == "tokens" and chart.skipped == [LOG_40M.name]   # its tokens/iter unknown
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 60)
            await wait_for(pilot, lambda: app.screen.query_one(EvalTable).row_count == 41, 30, "the evals")
            assert ctl.display_state == "nanoGPT log" and not ctl.engine_alive
            assert ctl.live.history.last_iter == 20000 and ctl.live.elapsed() > 20 * 3600   # estimated from the time lines
            assert not offered(app.screen) & CONTROL_KEYS.keys()
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None, 60)
            report = app.screen.report
            assert report.forecast.iter == 20000 and report.timing.evals == 40
            await pilot.press("escape")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), 60)
            await pilot.press("q")
        assert app.ui_errors == []
        assert not hasattr(ctl, "engine")                               # nothing to start, ever
    asyncio.run(scenario())


def test_two_runs_of_the_same_name_are_told_apart_by_their_folders(tmp_path):
    """`gpttui open gpttui-demo b/gpttui-demo`: the header, the runs table and the chart's legend
    name each by as much of its path as differs, not by the same name twice."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "train.log").write_bytes(LOG_40M.read_bytes())

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([tmp_path / "a" / "train.log", tmp_path / "b" / "train.log"]))
        ctl = app.controller
        async with app.run_test(size=(150, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, CompareScreen)
                           and app.screen.query_one(OverlayChart).curves, 60)
            assert [c.name for c in app.screen.query_one(OverlayChart).curves] == ["a/train.log", "b/train.log"]
            await wait_for(pilot, lambda: "a/train.log" in flat(app) and "b/train.log" in flat(app), 10, "the names")
    asyncio.run(scenario())


def test_one_log_opens_in_the_dashboard_and_control_keys_are_not_offered():
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
        ctl = app.controller
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 60)
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            # the table is filled a frame or two after the history is read (a CI run beside a bench read it empty)
            await wait_for(pilot, lambda: screen.query_one(EvalTable).row_count == 21, 30, "the evals")
            assert ctl.live.history.tokens_per_iter == 524_288 and ctl.live.tokens == 10200 * 524_288
            keys = offered(screen)
            assert not keys & CONTROL_KEYS.keys()                       # not in the footer, not on a key
            assert {"open('doctor')", "quit_app", "help"} <= keys
            assert "open('sample')" not in keys                       # a log has no checkpoint to sample
            for key in CONTROL_KEYS.values():
                await pilot.press(key)
            await pilot.pause(0.2)
            assert app.screen is screen and app.ui_errors == []
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: "judge the run" in flat(app), 10, "the help")
            help_text = flat(app)   # what the help screen shows
            assert "pause training" not in help_text and "edit the config" not in help_text
            assert "judge the run" in help_text
            # q and e as they act here: q quits at once, e changes nothing
            help_text = flat(app, "#help")   # (the screen's border would break a wrapped line)
            assert "quit (nothing runs here to stop)" in help_text and "asks whether to stop" not in help_text
            assert "what if it trained longer" in help_text and "(nothing is applied)" in help_text
            assert "train longer: change max_iters" not in help_text
    asyncio.run(scenario())


@pytest.mark.parametrize("lines, shown", [(None, "iter 3,000/3,000"), (239, "iter 1,500/3,000")])
def test_a_nanogpt_log_shows_the_iteration_it_ends_on_on_the_status_line(tmp_path: Path, lines, shown):
    """nanoGPT trains iterations 0..max_iters, one more than max_iters; the bar reads as the log's
    last line ("iter 1500: loss ..." for a log cut there), finished or not."""
    log = FIXTURES / "train_log_shakespeare_char_cpu_cos3000.txt"
    if lines is not None:
        cut = tmp_path / log.name
        cut.write_text("".join(log.read_text().splitlines(keepends=True)[:lines]))
        assert cut.read_text().splitlines()[-1].startswith("iter 1500:")
        log = cut

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([log]))
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading, 60)
            await wait_for(pilot, lambda: shown in screen_text(app, "#status"), 30, "the status line")
            status = screen_text(app, "#status")
            assert shown in status and ("100%" in status) == (lines is None), status
    asyncio.run(scenario())


def test_a_cpu_runs_small_mfu_is_shown_to_two_decimals():
    """nanoGPT on a CPU reports MFU 0.03% (against an A100): the panel shows that, not 0.0%."""
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([FIXTURES / "train_log_shakespeare_char_cpu_5x192_dropout0.2.txt"]))
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading, 60)
            await wait_for(pilot, lambda: "MFU 0.03%" in screen_text(app, "#spark-mfu"), 30, "the MFU panel")
            mfu = screen_text(app, "#spark-mfu")
            assert "MFU 0.03%" in mfu and "0.0%" not in mfu, mfu
    asyncio.run(scenario())


@pytest.mark.parametrize("log, shown", [("train_log_shakespeare_char_cpu_5x192_dropout0.2.txt", "–9.99e-4"),
                                        ("train_log_fineweb_40m.txt", None)])
def test_a_nanogpt_logs_lr_panel_shows_what_its_config_schedules(log, shown):
    """nanoGPT prints no lr, but get_lr is its config's: the panel shows the cosine ending at min_lr
    (1e-3 to 1e-4 by iter 1,500; its range is of the bars' means); a log without its config shows
    none rather than a guess."""
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([FIXTURES / log]))
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading, 60)
            await wait_for(pilot, lambda: ("lr 1.00e-4" if shown else "lr —") in screen_text(app, "#spark-lr"), 30,
                           "the lr panel")
            lr = screen_text(app, "#spark-lr")
            if shown:
                assert "lr 1.00e-4" in lr and shown in lr, lr
            else:
                assert "lr —" in lr, lr
    asyncio.run(scenario())


def live_run(tmp_path: Path, monkeypatch, max_iters: int, **config) -> tuple[Path, MetricsWriter]:
    """A run directory an engine is (said to be) writing: its hello and running state so far."""
    run = tmp_path / "run"
    run.mkdir()
    writer = MetricsWriter(run / "metrics.jsonl")
    writer.write(protocol.event("hello", 0, version=1, config={"max_iters": max_iters, **config},
                                params={"nanogpt": 1000}, device="cpu", peak_flops=1e11, tokens_per_iter=64,
                                start_iter=0, max_iters=max_iters))
    writer.write(protocol.event("state", 0, state="running"))
    monkeypatch.setattr("gpttui.analysis.opened_run.engine_state.status",
                        lambda run_dir: SimpleNamespace(kind="alive"))
    return run, writer


def test_a_running_run_is_followed_live(tmp_path, monkeypatch):
    run, writer = live_run(tmp_path, monkeypatch, 100)

    def step(i):
        writer.write(protocol.event("step", i, loss=3.0, lr=1e-3, dt_ms=5.0, tokens_per_s=1.0, mfu=0.1,
                                    grad_norm=1.0, tokens=(i + 1) * 64))
    for i in range(5):
        step(i)

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([run]))
        ctl = app.controller
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 60)
            assert ctl.live.history.last_iter == 4 and ctl.header_note == "read-only, live"
            for i in range(5, 12):
                step(i)
            writer.write(protocol.event("eval", 11, train_loss=2.9, val_loss=3.0, best_val_loss=3.0))
            await wait_for(pilot, lambda: ctl.live.history.last_iter == 11, 60)
            await wait_for(pilot, lambda: app.screen.query_one(EvalTable).row_count == 1, 60)
            assert ctl.display_state == "running"
    asyncio.run(scenario())
    writer.close()



def test_the_loss_chart_says_why_there_is_no_forecast_until_there_is_one(tmp_path, monkeypatch):
    """Right of the last eval the chart stayed empty with no word: now, while the run has evals but
    too few to forecast, a note under the plot says so in the doctor's words, until the forecast
    is drawn."""
    run, writer = live_run(tmp_path, monkeypatch, 400, lr_decay_iters=400)

    def train(first: int, last: int, evals: bool = True) -> None:   # steps, and an eval every 20 iterations
        for i in range(first, last):
            loss = 4.0 * (i + 10) ** -0.2
            writer.write(protocol.event("step", i, loss=loss, lr=1e-3, dt_ms=5.0, tokens_per_s=1.0, mfu=0.1,
                                        grad_norm=1.0, tokens=(i + 1) * 64))
            if evals and i % 20 == 0:
                writer.write(protocol.event("eval", i, train_loss=loss + 0.03, val_loss=loss + 0.05))

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([run]))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 60)
            chart = app.screen.query_one(LossChart)
            train(0, 10, evals=False)   # steps, no eval yet: nothing to say
            await wait_for(pilot, lambda: "iteration" in screen_text(app, "#chart") and not chart.stale(), 30)
            assert "forecast" not in screen_text(app, "#chart")
            train(10, 50)
            await wait_for(pilot, lambda: "too little to forecast: 2 evals past" in flat_chart(app), 30, "the note")
            assert "the first 30% of the run so far" in flat_chart(app)
            assert "·" not in screen_text(app, "#chart")       # no forecast band drawn
            train(50, 130)
            await wait_for(pilot, lambda: "·" in screen_text(app, "#chart"), 30, "the forecast drawn")
            assert "forecast" not in screen_text(app, "#chart")
            assert app.ui_errors == []
    asyncio.run(scenario())
    writer.close()


def test_the_projection_stops_where_its_band_gets_too_wide_and_the_chart_says_so(tmp_path, monkeypatch):
    """Evals to iter 130 of a 100,000-iteration run: the band to max_iters would span far more than
    MAX_BAND, so the chart draws the projection only as far as it stays within, and says why."""
    run, writer = live_run(tmp_path, monkeypatch, 100_000, lr_decay_iters=100_000)
    for i in range(0, 131):
        loss = 4.0 * (i + 10) ** -0.2
        writer.write(protocol.event("step", i, loss=loss, lr=1e-3, dt_ms=5.0, tokens_per_s=1.0, mfu=0.1,
                                    grad_norm=1.0, tokens=(i + 1) * 64))
        if i % 10 == 0:
            writer.write(protocol.event("eval", i, train_loss=loss + 0.03, val_loss=loss + 0.05))

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([run]))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: "too early to forecast" in flat_chart(app), 60, "the note")
            note = flat_chart(app)
            assert "forecast drawn to iter " in note and "too early to forecast iter 100,000" in note
            assert "·" in screen_text(app, "#chart")        # the band, as far as it is drawn
            assert app.ui_errors == []
    asyncio.run(scenario())
    writer.close()


def flat_chart(app) -> str:
    """The chart's text as one line (the note wraps at words)."""
    return " ".join(screen_text(app, "#chart").split())


def test_log_times_count_an_eval_pause_once():
    h = load_run(LOG_124M)
    times = log_clock(h)[0]
    # iter 1000 evaluates: its 29.2 s line stands for 1 slow iteration and 199 normal ones
    assert times[1000] - times[800] == pytest.approx(29.151 + 199 * 9.35, rel=0.002)
    assert times[1200] - times[1000] == pytest.approx(200 * 9.346, rel=0.001)


def test_at_80x24_the_compare_tables_show_whole_columns_what_compares_first():
    """The runs table's header was cut to 'best v' (and at 80 columns showed no loss at all)."""
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([LOG_124M, LOG_40M]))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading and isinstance(app.screen, CompareScreen)
                           and app.screen.query_one(OverlayChart).curves, 60)
            # the runs table is filled again once it has its width, and the evals table scrolls to
            # its last row once DataTable has measured its rows, when idle: CI runs read each before
            await wait_for(pilot, lambda: "…124m.txt" in screen_text(app, "#runs")
                           and screen_text(app, "#compare-evals").split()[-5:-3] == ["10,000", "3.3852"],
                           30, "both tables laid out")
            runs = screen_text(app, "#runs").splitlines()
            assert runs[0].split() == ["run", "best", "val", "last", "val"]     # whole headers, losses first
            assert runs[1].split()[1:] == ["…124m.txt", "3.3581", "3.3581"]    # the names' shared start left out
            evals = screen_text(app, "#compare-evals").splitlines()
            # whole headers; the gap (val less train) gives way to the notes, ★ ✓ (legend below)
            assert evals[0].split() == ["step", "train", "val", "note"]
            assert evals[-1].split() == ["10,000", "3.3852", "3.3581", "★", "✓"]
            await pilot.press("q")
        assert app.ui_errors == []
    asyncio.run(scenario())


def _diverged_log(path: Path, bad: str) -> Path:
    """A nanoGPT-format log whose last eval's val loss is `bad` (nan, inf: a run that diverged)."""
    lines = []
    for k, it in enumerate(range(0, 400, 50)):
        val = bad if it == 350 else f"{4.2 - 0.3 * k:.4f}"
        lines.append(f"step {it}: train loss {4.1 - 0.3 * k:.4f}, val loss {val}")
        lines += [f"iter {i}: loss {4.0 - 0.006 * i:.4f}, time 12.00ms, mfu 1.00%" for i in range(it, it + 50, 10)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_logs_whose_val_loss_went_nan_or_inf_open_without_a_crash(tmp_path):
    """The diverged eval is data (the doctor says it), never a point the charts try to place."""
    logs = [_diverged_log(tmp_path / "nan_log.txt", "nan"), _diverged_log(tmp_path / "inf_log.txt", "inf")]

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns(logs))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, CompareScreen)
                           and app.screen.query_one(OverlayChart).curves, 60)
            await pilot.pause(0.3)
            assert "●" in app.screen.query_one(OverlayChart).build(100, 30).plain
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 60)
            await wait_for(pilot, lambda: "nan" in screen_text(app), 30, "the diverged eval shown")
            assert ctl.live.history.evals[-1].val_loss != ctl.live.history.evals[-1].val_loss
        assert app.ui_errors == []
    asyncio.run(scenario())


def test_a_memorising_log_opened_half_way_says_under_the_chart_that_val_will_rise(tmp_path):
    """A real nanoGPT log on 8k characters repeated ~100 epochs, cut at iter 900 of 1,200 (val up from
    2.39 to 3.25): the projection climbs, and the note under the chart says why it matters."""
    text = (FIXTURES / "train_log_sc_tiny_mem_cos1200.txt").read_text()
    log = tmp_path / "train_log.txt"
    log.write_text(text[:text.index("iter 910:")])

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([log]))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not app.controller.loading and isinstance(app.screen, DashboardScreen), 60)
            await wait_for(pilot, lambda: "val forecast to rise" in flat_chart(app), 30, "the note")
            assert "above its best 2.393 (iter 360): more iterations may not pay" in flat_chart(app)
            assert "·" in screen_text(app, "#chart")   # the band is drawn
    asyncio.run(scenario())


def test_a_log_train_py_is_still_writing_is_followed_as_it_grows(tmp_path):
    """The user's own train.py writes the log (`python train.py | tee log.txt`); `gpttui open` on it
    showed the log as it stood when opened, and never more."""
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines(True)
    first_eval = next(i for i, line in enumerate(lines) if line.startswith("step 0:"))
    log = tmp_path / "log.txt"
    log.write_text("".join(lines[:first_eval]))          # the header: train.py is compiling

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([log]))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, DashboardScreen), 60)
            table = app.screen.query_one(EvalTable)
            assert table.row_count == 0 and "read-only, live" not in flat(app, "#header")
            with open(log, "a", encoding="utf-8") as f:       # train.py goes on, a line at a time
                for line in lines[first_eval:]:
                    f.write(line[:9])
                    f.flush()
                    await pilot.pause(0.02)
                    f.write(line[9:])
                    f.flush()
                    if line.startswith("step 350:"):           # half-way: what it shows so far
                        await wait_for(pilot, lambda: table.row_count == 8, 30, "the evals so far")
                        assert "read-only, live" in flat(app, "#header")
                        assert re.search(r"iter 3[45]\d/700", flat(app, "#status"))
            await wait_for(pilot, lambda: table.row_count == 15 and "iter 700/700" in flat(app, "#status"), 30,
                           "the whole run")
            whole = load_run(FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt")
            assert [e.val_loss for e in ctl.live.history.evals] == [e.val_loss for e in whole.evals]
            assert ctl.live.history.skipped_lines == whole.skipped_lines == 0
            pane = flat(app, "#log")     # the log pane: what train.py wrote, as `tail -f` showed it
            assert lines[-1].strip() in pane and "step 700: train loss" in pane
            assert list(ctl.log.lines)[-len(lines) + first_eval - 1:] == [
                "── log.txt is being written: its lines from here on", *(line.rstrip() for line in lines[first_eval:])]
            await pilot.press("q")
        assert app.ui_errors == []
    asyncio.run(scenario())


def test_a_followed_log_that_train_py_ends_in_a_traceback_says_so(tmp_path):
    """Out of memory mid-run: the traceback comes last, and the run it followed has ended."""
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines(True)
    cut = next(i for i, line in enumerate(lines) if line.startswith("iter 300:"))
    log = tmp_path / "log.txt"
    log.write_text("".join(lines[:cut + 1]))

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([log]))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, DashboardScreen), 60)
            await wait_for(pilot, lambda: "iter 300/700" in flat(app, "#status"), 30, "the log so far")
            assert "error" not in flat(app, "#status")
            with open(log, "a", encoding="utf-8") as f:
                f.write((FIXTURES.parent / "tracebacks" / "cuda_oom.txt").read_text(encoding="utf-8"))
            await wait_for(pilot, lambda: "nanoGPT log, ended in an error" in flat(app, "#status"), 30, "the error")
            assert "torch.OutOfMemoryError: CUDA out of memory" in flat(app, "#log")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None, 60)
            assert app.screen.report.findings[0].verdict.startswith("out of memory: lower batch_size")
            await pilot.press("escape")
            with open(log, "a", encoding="utf-8") as f:       # run again, appended: the error is past
                f.writelines(lines[cut + 1:])
            await wait_for(pilot, lambda: "iter 700/700" in flat(app, "#status"), 30, "the run appended")
            assert "error" not in flat(app, "#status") and ctl.live.history.fatal_error is None
            await pilot.press("q")
        assert app.ui_errors == []
    asyncio.run(scenario())


def test_a_log_written_anew_while_followed_shows_the_new_run_only(tmp_path):
    """train.py run again into the same file (`> log.txt`): the file starts over, shorter, and the
    new run begins at iteration 0; what was shown of the old one is dropped, chart included."""
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines(True)
    log = tmp_path / "log.txt"
    log.write_text("".join(lines))
    run = open_source(log, 1)
    assert run.live.history.last_iter == 700 and max(run.live.series.window().iters) == 700
    cut = next(i for i, line in enumerate(lines) if line.startswith("iter 200:"))
    log.write_text("".join(lines[:cut + 1]))              # the new run, 200 iterations in so far
    assert run.poll()
    whole = load_run(log)
    assert [s.iter for s in run.live.history.steps] == [s.iter for s in whole.steps]
    assert [e.val_loss for e in run.live.history.evals] == [e.val_loss for e in whole.evals]
    assert max(run.live.series.window().iters) == 200 and run.live.history.last_iter == 200 and run.followed


def test_a_resumed_log_shows_the_parameter_count_it_printed():
    """Resumed without shape flags, the model is the checkpoint's: the header showed nanoGPT's default 85M."""
    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([FIXTURES / "resumed_without_shape.txt"]))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: "params 0.10M" in flat(app, "#header"), 60, "the log's own count")
            await pilot.press("q")
        assert app.ui_errors == []
    asyncio.run(scenario())
