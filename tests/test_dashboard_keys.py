"""The dashboard's keys as a user meets them: honest in a read-only view, all in the command
palette with their key, and rebound by the user's keymap.toml."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from app_helpers import (
    TINY,
    ScreenHost,
    ScriptedEngine,
    dashboard,
    flat,
    footer_text,
    palette_search,
    pilot_test,
    record_notifications,
    screen_text,
    text_of,
    wait_for,
)
from textual.binding import Binding

from gpttui.app import GpttuiApp, LaunchPlan
from gpttui.run import config as C
from gpttui.run import layout, protocol
from gpttui.screens import sample as sample_pane
from gpttui.screens.confirm import ConfirmScreen
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.extend import ExtendScreen
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets.status import StatusLine

pytestmark = pytest.mark.timeout(300)   # pilot tests on a loaded 2-core CI machine

LOG_124M = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt"


async def opened(pilot) -> DashboardScreen:
    app = pilot.app
    await wait_for(pilot, lambda: not app.controller.loading and isinstance(app.screen, DashboardScreen), 60,
                   "the log read")
    await wait_for(pilot, lambda: "Quit" in footer_text(app), 5, "the footer")
    return app.screen


@pilot_test
async def test_a_read_only_view_offers_no_control_and_extend_is_a_what_if():
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot)
        footer = footer_text(app)
        for word in ("Pause", "Resume", "Save", "Stop", "Eval", "Config", "Undo"):
            assert word not in footer, f"{word} offered in a read-only view: {footer}"
        assert "Quit" in footer and "Doctor" in footer and "Extend" in footer

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 10, "extend")
        await pilot.press(*"20000")
        await wait_for(pilot, lambda: "val loss at 20,000 ≈" in flat(app), 20, "the forecast")
        shown = flat(app)
        assert "what if" in shown and "Apply" not in shown and "resumes it" not in shown
        assert "10.49B tokens seen" in shown
        # the eval cost is the log's (the doctor: 19.9 s each), not the hours a log line stands for
        per_eval = float(shown.split(" evals × ")[1].split(" s")[0])
        assert 15 < per_eval < 25
        await pilot.press("ctrl+r")   # (Apply's key elsewhere): nothing to apply here
        await pilot.pause(0.2)
        assert isinstance(app.screen, ExtendScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, "back")
        assert app.ui_errors == []


@pilot_test
async def test_every_key_the_dashboard_offers_is_in_the_command_palette_with_its_key():
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot)
        offered = [a.binding for a in screen.active_bindings.values() if a.enabled and a.binding.description
                   and isinstance(a.binding, Binding) and a.binding in DashboardScreen.BINDINGS]
        assert {b.id for b in offered} >= {"help", "quit", "extend", "doctor", "chart_x", "chart_zoom"}
        assert "sample" not in {b.id for b in offered}   # a log has no checkpoint to sample
        for b in offered:
            title = f"{b.description} ({app.get_key_display(b)})"
            await palette_search(pilot, b.description.lower(), title)
        # chosen there, it does what the key does
        await pilot.press("ctrl+p")
        await pilot.press(*"doctor")
        await wait_for(pilot, lambda: "Doctor (d)" in screen_text(app), 5, "Doctor in the palette")
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DoctorScreen", 10, "the doctor")
        assert app.ui_errors == []


@pilot_test
async def test_a_keymap_rebinds_by_id_and_a_bad_one_is_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    keymap = tmp_path / "gpttui" / "keymap.toml"
    keymap.parent.mkdir()
    keymap.write_text('doctor = "f2"\nextend = "ctrl+e,f3"\n')
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    shown = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(pilot)
        assert "f2 Doctor" in footer_text(app) and "d Doctor" not in footer_text(app)
        await pilot.press("d")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DashboardScreen)          # d is no longer the doctor's
        await pilot.press("f2")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DoctorScreen", 10, "the doctor on f2")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, "back")
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 10, "extend on f3")
        assert shown == [] and app.ui_errors == []

    for bad, says in (('doctor = [1, 2\n', "not valid TOML"), ('doctor = 3\nnope = "f4"\n', "ignored doctor")):
        keymap.write_text(bad)
        app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
        shown = record_notifications(app)
        async with app.run_test(size=(120, 40)) as pilot:
            await opened(pilot)
            await wait_for(pilot, lambda: shown, 5, "the warning")
            assert len(shown) == 1 and str(keymap) in shown[0] and says in shown[0]
            assert "d Doctor" in footer_text(app)               # the default keys stand
            assert app.ui_errors == []


async def click_footer_key(pilot, screen, description: str, done) -> bool:
    """Click the footer key as a user would, until `done()` says it did what the key does. The
    footer is built again when the keys on offer change (a click on a key just replaced lands
    nowhere), and pilot.click's own answer can't be used: it looks again after the click, when
    the screen the key opened may already cover the spot."""
    for _ in range(50):
        if pilot.app.screen is screen:   # (not yet covered by what the key opens)
            key = next((k for k in screen.query("FooterKey") if k.description == description), None)
            if key is not None:
                await pilot.click(key)
        await pilot.pause(0.2)
        if done():
            return True
    return False


@pilot_test
async def test_a_click_on_a_footer_key_does_what_the_key_does():
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        assert await click_footer_key(pilot, screen, "Doctor", lambda: type(app.screen).__name__ == "DoctorScreen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, 5, "back")
        assert await click_footer_key(pilot, screen, "Help", lambda: "every one of these by name" in flat(app))
        assert "judge the run: trends, forecast, MFU" in flat(app) and "pause training" not in flat(app)
        assert app.ui_errors == []


@pilot_test
async def test_a_read_only_log_offers_no_sampling_and_shows_none_of_this_machines_figures(monkeypatch):
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        assert "Sample" not in footer_text(app)
        assert not any(c.title.startswith("Sample") for c in app.get_system_commands(screen))   # nor in ctrl+p
        await pilot.press("g")
        await pilot.pause(0.2)
        assert app.screen is screen
        shown = screen_text(app)
        assert "CPU" not in shown and "RAM" not in shown                # this machine's, not the run's
        assert app.ui_errors == []
    # a log's sampling pane, if opened anyway, says there will never be a checkpoint beside it
    monkeypatch.setattr(sample_pane, "sampler_argv", lambda: [sys.executable, "-c", "import time; time.sleep(60)"])
    host = ScreenHost(sample_pane.SampleScreen(LOG_124M))
    async with host.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g")
        status = flat(host, "#status")
        assert "is a log, with no checkpoint" in status and "yet" not in status


class SlowStop(ScriptedEngine):
    """An engine whose stop takes a while, as a real one's does (its checkpoint, then torch's
    exit): state saving at once, state stopped and the exit only on `finish()`."""

    def send(self, cmd: str, **values: Any) -> bool:
        if self._code is not None:
            return False
        self.sent.append({"cmd": cmd, **values})
        if cmd == "stop":
            self.inbox.put_event(protocol.decode_event(protocol.encode(
                protocol.event("state", self._iter, state="saving"))))
        return True

    def finish(self) -> None:
        self.inbox.put_event(protocol.decode_event(protocol.encode(
            protocol.event("state", self._iter, state="stopped"))))
        self._code = 0


def training(steps: int) -> list[dict[str, Any]]:
    t = 100.0
    out = [{**protocol.event("hello", 0, version=1, config={**TINY, "max_iters": 1000}, params={"nanogpt": 14_000},
                             device="cpu", dtype="float32", peak_flops=1e11, tokens_per_iter=64, start_iter=0,
                             max_iters=1000), "t": t},
           {**protocol.event("state", 0, state="running"), "t": t}]
    for i in range(steps):
        t += 0.1
        out.append({**protocol.event("step", i, loss=3.0, lr=1e-3, dt_ms=100.0, tokens_per_s=640.0, mfu=0.01,
                                     grad_norm=1.0, tokens=64 * (i + 1)), "t": t})
    return out


@pilot_test
async def test_while_the_engine_stops_its_keys_leave_the_footer_and_the_question_wraps_at_words(tmp_path, char_data):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    C.save(C.replace(C.DEFAULTS, **{**TINY, "out_dir": str(run_dir), "data_dir": str(char_data)}),
           run_dir / layout.CONFIG)
    app = GpttuiApp(LaunchPlan(run_dir, C.load(run_dir), start=False))
    ctl = app.controller
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not ctl.loading, 30, "the history read")
        engine = SlowStop(training(571))
        ctl.engine = engine
        await wait_for(pilot, lambda: ctl.live.iter == 571 and "Stop" in footer_text(app), 30, "the run")
        assert {"Pause", "Save", "Stop"} <= set(footer_text(app).split())

        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the stop question")
        message = app.screen.message
        # the run trains on while the question stands: the iteration it names is only where it was
        assert "where the run stands when you answer (iteration 571 now: it trains on while this asks)" in message
        rows = screen_text(app, "#message").splitlines()
        assert " ".join(" ".join(rows).split()) == message                # all of it shown ...
        assert all(set(row.split()) <= set(message.split()) for row in rows)   # ... no word cut in two
        await pilot.press("y")
        await wait_for(pilot, lambda: "stopping" in text_of(dashboard(app).query_one(StatusLine)), 10, "stopping")
        await wait_for(pilot, lambda: "Stop" not in footer_text(app).split(), 5, "the footer to change")
        footer = footer_text(app).split()
        assert ctl.engine_alive and not {"Pause", "Save", "Stop", "Resume"} & set(footer)
        assert {"Quit", "Help", "Doctor"} <= set(footer)                    # what still applies stays
        await pilot.press("space", "s", "v")
        await pilot.pause(0.2)
        assert [c["cmd"] for c in engine.sent] == ["stop"]                  # nothing sent to an engine going away
        await pilot.press("d")                                              # keys that apply still work
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DoctorScreen", 10, "the doctor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, "back")

        engine.finish()
        await wait_for(pilot, lambda: not ctl.engine_alive and "Resume" in footer_text(app), 10, "stopped")
        assert app.ui_errors == []


def test_dashboard_bindings_all_have_ids():
    assert all(isinstance(b, Binding) and b.id for b in DashboardScreen.BINDINGS)
    assert dashboard  # (the helper the live tests use)
