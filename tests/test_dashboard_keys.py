"""The dashboard's keys as a user meets them: honest in a read-only view, all in the command
palette with their key, and rebound by the user's keymap.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import (
    dashboard,
    flat,
    footer_text,
    palette_search,
    pilot_test,
    record_notifications,
    screen_text,
    wait_for,
)
from textual.binding import Binding

from gpttui.app import GpttuiApp
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.extend import ExtendScreen
from gpttui.viewer import ReadOnlyRuns

pytestmark = pytest.mark.timeout(120)

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
        assert {b.id for b in offered} >= {"help", "quit", "extend", "doctor", "sample", "chart_x", "chart_zoom"}
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


@pilot_test
async def test_a_click_on_a_footer_key_does_what_the_key_does():
    app = GpttuiApp(ReadOnlyRuns([LOG_124M]))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        doctor = next(k for k in screen.query("FooterKey") if k.description == "Doctor")
        assert await pilot.click(doctor)
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DoctorScreen", 10, "the doctor on a click")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, 5, "back")
        helper = next(k for k in screen.query("FooterKey") if k.description == "Help")
        assert await pilot.click(helper)
        await wait_for(pilot, lambda: "every one of these by name" in flat(app), 10, "the keys listed")
        assert "judge the run: trends, forecast, MFU" in flat(app) and "pause training" not in flat(app)
        assert app.ui_errors == []


def test_dashboard_bindings_all_have_ids():
    assert all(isinstance(b, Binding) and b.id for b in DashboardScreen.BINDINGS)
    assert dashboard  # (the helper the live tests use)
