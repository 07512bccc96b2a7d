"""Panels fit their width the way a reader needs: the status line keeps state, iteration and ETA
at 80 columns; notes and log lines are shortened or wrapped at words, never cut mid-word."""

from __future__ import annotations

from pathlib import Path

from app_helpers import pilot_test, screen_text, wait_for
from textual.app import App, ComposeResult
from textual.screen import Screen

from gpttui.analysis.live import LiveRun
from gpttui.widgets.eval_table import fit_note
from gpttui.widgets.fmt import elide
from gpttui.widgets.header import RunHeader
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.status import Figures, fitted

RUNNING = Figures("running", "", 1200, 5000, "921.6K", "1m 02s", "3m 10s")


def test_status_line_gives_up_elapsed_tokens_and_bar_before_state_iteration_or_eta():
    assert fitted(RUNNING, 120).plain == \
        " running   iter 1,200/5,000 ━━━━━━━━━━━━━━━━━━━━ 24%  tokens 921.6K  elapsed 1m 02s  ETA 3m 10s"
    at_80 = fitted(RUNNING, 80).plain
    assert "elapsed" not in at_80 and "tokens 921.6K" in at_80 and at_80.endswith("ETA 3m 10s")
    pausing = Figures("running", "pausing…", 123_456, 600_000, "921.6M", "1h 02m", "13h 10m")
    at_80 = fitted(pausing, 80).plain
    assert len(at_80) <= 80 and at_80.startswith(" running  pausing…  iter 123,456/600,000") and "ETA 13h 10m" in at_80
    at_50 = fitted(pausing, 50).plain
    assert "━" not in at_50 and "tokens" not in at_50 and "iter 123,456/600,000 21%  ETA 13h 10m" in at_50


def test_notes_in_full_then_short_words_then_symbols_then_cut_at_a_word():
    note = "best so far, checkpoint saved"
    assert [fit_note(note, w) for w in (40, 20, 5, 2)] == [note, "best, saved", "★ ✓", "b…"]
    assert fit_note("best so far", 6) == "★"  # one row's "best" beside another's "★ ✓" would read as two codes
    assert elide("iter 0: loss 4.1882, time 4726.74ms, tok/s 162", 30) == "iter 0: loss 4.1882, time…"


class OneLog(App[None]):
    CSS = "LogPane { width: 40; height: 8; }"

    def compose(self) -> ComposeResult:
        yield LogPane(id="log")


@pilot_test
async def test_log_lines_wrap_at_words_and_wrap_again_on_resize():
    app = OneLog()
    line = "iter 10: loss 2.1234, time 51.23ms, mfu 0.41%, tok/s 15,012, lr 1.00e-03"
    async with app.run_test(size=(60, 10)) as pilot:
        pane = app.query_one(LogPane)
        pane.write_lines([f"line {i}" for i in range(20)] + [line])
        await wait_for(pilot, lambda: "1.00e-03" in screen_text(app, "#log"), 5, "the last line in view")
        shown = [row.rstrip() for row in screen_text(app, "#log").splitlines()]
        assert shown[-3:] == ["line 19", "iter 10: loss 2.1234, time 51.23ms,",   # scrolled to the end,
                              "  mfu 0.41%, tok/s 15,012, lr 1.00e-03"]            # broken at a space
        pane.styles.width = 60
        await wait_for(pilot, lambda: screen_text(app, "#log").rstrip().endswith("  15,012, lr 1.00e-03"), 5,
                       "wrapped again at the new width")
        assert pane.lines[-1] == line                         # what was written, unwrapped



class LogScreen(Screen[None]):
    """A screen that writes its pane's lines from its own handlers, as the dashboard does."""

    CSS = "LogPane { width: 40; height: 8; }"

    def __init__(self, batch: list[str]) -> None:
        super().__init__()
        self.batch = batch

    def compose(self) -> ComposeResult:
        yield LogPane(id="log")

    def on_mount(self) -> None:
        self.query_one(LogPane).write_lines(["engine started"])
        self.set_timer(0.05, lambda: self.query_one(LogPane).write_lines(self.batch))


def last_line(app: App[None]) -> str:
    return screen_text(app, "#log").splitlines()[-1].strip()


@pilot_test
async def test_a_batch_of_lines_that_first_overflows_the_log_shows_its_last_line():
    """A failed engine's last lines come in one batch and nothing after: the pane once stayed at
    its top (the scroll to the end ran before the pane could scroll) and hid the failure."""
    app = App[None]()
    async with app.run_test(size=(60, 10)) as pilot:
        for attempt in range(5):
            await app.push_screen(LogScreen([f"run {attempt} line {i}" for i in range(30)]))
            pane = app.screen.query_one(LogPane)
            await wait_for(pilot, lambda: len(pane.lines) == 31, 5, "the batch written")
            await wait_for(pilot, lambda: last_line(app) == f"run {attempt} line 29", 5, "the batch's last line shown")
            if attempt == 4:   # scrolled up, the view stays as more lines come; back at the end, it follows
                pane.scroll_up(animate=False)
                await wait_for(pilot, lambda: "line 29" not in screen_text(app, "#log"), 5, "scrolled up")
                before = screen_text(app, "#log")
                pane.write_lines(["more"])
                await pilot.pause(0.1)
                assert screen_text(app, "#log") == before
                pane.scroll_end(animate=False, immediate=True)
                pane.write_lines(["and more"])
                await wait_for(pilot, lambda: last_line(app) == "and more", 5, "the new line followed")
            app.pop_screen()


class OneHeader(App[None]):
    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")


@pilot_test
async def test_the_header_gives_up_the_dtypes_reason_whole_never_a_word_of_it():
    """The demo's header at 80 columns read 'float32 (the CPU's fast', and its note never showed."""
    live = LiveRun()
    live.add({"type": "hello", "iter": 0, "t": 1.0, "device": "cpu", "dtype": "float32",
              "dtype_reason": "the CPU's fast path", "tokens_per_iter": 768, "start_iter": 0,
              "params": {"total": 804_096, "nanogpt": 795_904, "non_embedding": 787_584}})
    for width, reason in ((80, False), (120, True)):
        app = OneHeader()
        async with app.run_test(size=(width, 3)) as pilot:
            header = app.query_one(RunHeader)
            header.show(live, Path("/home/me/gpttui-demo"), "demo", None)
            await pilot.pause()
            shown = screen_text(app).splitlines()[0]
            # nanoGPT's count in nanoGPT's form, as the doctor and the config editor say it
            assert "params 0.80M" in shown and "tokens/iter 768" in shown and "float32" in shown
            assert ("float32 (the CPU's fast path)  demo" in shown) == reason
            assert "demo" in shown and "(the" not in shown.replace("(the CPU's fast path)", "")
