"""The sampling pane against a real sampler process: text streams in, Esc stops it, the history
and the samples written at checkpoints are browsable, bad settings are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from app_helpers import ScreenHost, run, screen_text, wait_for
from engine_kit import CHAR_ARGS
from textual.widgets import Input, OptionList, Select, Static, TextArea

from gpttui.data.metapkl import write_meta_pkl
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run.layout import SAMPLE_SEPARATOR as SEPARATOR
from gpttui.screens import sample as pane
from gpttui.screens.sample import SampleScreen

torch.set_num_threads(1)
SAMPLER_ARGV = pane.sampler_argv()


def sample_app(run_dir: Path) -> ScreenHost:
    """The pane on its own, as the dashboard opens it: the run directory and its data directory."""
    return ScreenHost(SampleScreen(run_dir, str(run_dir.parent / "data")))


@pytest.fixture
def run_dir(tmp_path, monkeypatch, shakespeare_chars) -> Path:
    monkeypatch.setattr(pane, "sampler_argv", lambda: [*SAMPLER_ARGV, "--threads=1"])
    data = tmp_path / "data"
    data.mkdir()
    write_meta_pkl(data / "meta.pkl", shakespeare_chars)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = GPT(GPTConfig(**CHAR_ARGS))
    torch.save({"model": model.state_dict(), "optimizer": {}, "model_args": CHAR_ARGS, "iter_num": 40,
                "best_val_loss": 2.25, "config": {"data_dir": str(data)}}, run_dir / "ckpt.pt")
    rows = [{"iter": 20, "t": 1.0, "val_loss": 3.1, "prompt": "\n", "text": "hte wodr", "ckpt": "ckpt.pt"},
            {"iter": 40, "t": 2.0, "val_loss": 2.25, "prompt": "\n", "text": "the world", "ckpt": "ckpt.pt"}]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def test_text_streams_esc_stops_history_and_samples_over_time(run_dir):
    async def go():
        app = sample_app(run_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SampleScreen)
            status = screen.query_one("#status", Static)
            await wait_for(pilot, lambda: "ready" in str(status.render()), timeout=60, what="sampler ready")
            assert screen.query_one("#ckpt", Select).value == str(run_dir / "ckpt.pt")
            # samples over time, from samples.jsonl
            over = screen.query_one("#over-time-list", OptionList)
            assert over.option_count == 2 and "iter      40 · val 2.250" in str(over.get_option_at_index(1).prompt)
            await pilot.press("f4")
            await wait_for(pilot, lambda: "the world" in screen.query_one("#over-time-text", TextArea).text)
            await pilot.press("f2")

            # a long sample: text streams in, Esc stops it
            screen.query_one("#prompt", Input).value = "ROMEO:"
            screen.query_one("#set-max_new_tokens", Input).value = "100000"
            screen.query_one("#prompt", Input).focus()
            await pilot.press("enter")
            out = screen.query_one("#output-text", TextArea)
            await wait_for(pilot, lambda: len(out.text) > 40, timeout=60, what="streamed text")
            assert out.text.startswith("ROMEO:") and screen.generating
            assert "iter 40 · val loss 2.2500" in str(screen.query_one("#ckpt-info", Static).render())
            await pilot.press("escape")
            await wait_for(pilot, lambda: not screen.generating, timeout=30, what="stopped")
            assert "stopped" in str(screen.query_one("#status", Static).render())
            assert len(screen.history) == 1 and screen.history[0].stopped
            assert app.screen is screen  # Esc stopped the sample; the pane stays

            # two short samples, separated as nanoGPT prints them
            screen.query_one("#set-max_new_tokens", Input).value = "20"
            screen.query_one("#set-num_samples", Input).value = "2"
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: len(screen.history) == 3 and not screen.generating, timeout=60)
            text = out.text
            assert text.count(SEPARATOR) == 1 and text.startswith("ROMEO:")
            assert [d.tokens for d in screen.history[1:]] == [20, 20]
            assert screen.query_one("#history-list", OptionList).option_count == 3
            await pilot.press("f3")
            await wait_for(pilot, lambda: screen.history[2].text in screen.query_one("#history-text", TextArea).text)

            sampler = screen.sampler
            await pilot.press("escape")  # idle: Esc closes the pane, and its sampler goes
            await pilot.pause()
            assert not isinstance(app.screen, SampleScreen)
            assert sampler is not None and sampler.wait(10) is not None

    run(go())


def test_bad_settings_and_no_checkpoint_are_named(run_dir):
    async def go():
        (run_dir / "ckpt.pt").unlink()
        app = sample_app(run_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            status = screen.query_one("#status", Static)
            await pilot.press("ctrl+g")
            assert "no checkpoint in" in str(status.render()) and status.has_class("error")
            assert screen.query_one("#ckpt", Select).prompt == "no checkpoint yet"
            torch.save({"x": 1}, run_dir / "other.pt")
            screen.refresh_files()
            select = screen.query_one("#ckpt", Select)
            assert select.value == str(run_dir / "other.pt")
            # the blank entry Select lists above the checkpoints no longer says there are none
            assert select.prompt == "choose a checkpoint"
            select.clear()
            await pilot.press("ctrl+g")
            assert "choose a checkpoint above first" in str(status.render()) and "no checkpoint in" not in str(status.render())
            select.value = str(run_dir / "other.pt")
            screen.query_one("#set-top_p", Input).value = "1.5"
            await pilot.press("ctrl+g")
            assert "top-p: must be in (0, 1]" in str(status.render())
            screen.query_one("#set-top_p", Input).value = "0.9"
            screen.query_one("#set-temperature", Input).value = "warm"
            await pilot.press("ctrl+g")
            assert "temp: expected a number, got 'warm'" in str(status.render())
            # the sampler comes ready (torch loaded), before or after: the error stays until fixed
            await wait_for(pilot, lambda: screen.sampler_ready, 60, "the sampler ready")
            await pilot.pause()
            assert str(status.render()).startswith("temp: expected a number, got 'warm'") and status.has_class("error")
            screen.query_one("#set-temperature", Input).value = "0.8"
            await pilot.press("ctrl+g")  # a file that is not a checkpoint: the sampler says so
            await wait_for(pilot, lambda: "not a nanoGPT checkpoint" in str(status.render()), timeout=60)
            assert not screen.generating

    run(go())


def test_at_80x24_every_setting_and_generate_show_and_clicks_do_what_keys_do(run_dir):
    async def go():
        app = sample_app(run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = app.screen
            shown = screen_text(app)
            assert "seed" in shown and "1337" in shown and "Generate" in shown and "count" in shown
            # a click on a tab does what f4 does
            assert await pilot.click("#tabs Tab#--content-tab-over-time")
            over = screen.query_one("#over-time-text", TextArea)
            await wait_for(pilot, lambda: "the world" in over.text, 10, "the latest checkpoint's sample")
            # a click on another checkpoint's sample shows it
            assert await pilot.click("#over-time-list", offset=(3, 1))   # its first row, inside the border
            await wait_for(pilot, lambda: "hte wodr" in over.text, 10, "iteration 20's sample")
            await pilot.press("escape")

    run(go())
