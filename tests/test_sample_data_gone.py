"""The sampling pane on a run whose data directory is gone since training (moved or deleted): it
says so in one line, with the tokenizer it uses instead, or that it can't encode the prompt.
`gpttui sample` refuses a missing --data_dir; the pane names the run's own, which it can't refuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from app_helpers import ScreenHost, flat, run, wait_for
from engine_kit import BPE_ARGS, CHAR_ARGS
from textual.widgets import Input, Static

from gpttui.data.metapkl import write_meta_pkl
from gpttui.engine.model import GPT, GPTConfig
from gpttui.screens import sample as pane
from gpttui.screens.sample import SampleScreen

torch.set_num_threads(1)
SAMPLER_ARGV = pane.sampler_argv()
GONE = "is gone (moved or deleted since training?)"


def trained(tmp_path: Path, args: dict, chars: list[str], dataset: str = "") -> tuple[Path, Path]:
    """A run directory with a checkpoint of a model with `args` trained on data/moved (its meta.pkl
    of `chars`), and that directory, deleted since."""
    data = tmp_path / "data" / "moved"
    data.mkdir(parents=True)
    write_meta_pkl(data / "meta.pkl", chars)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"model": GPT(GPTConfig(**args)).state_dict(), "optimizer": {}, "model_args": args, "iter_num": 40,
                "best_val_loss": 2.25, "config": {"data_dir": str(data), "dataset": dataset}}, run_dir / "ckpt.pt")
    shutil.rmtree(data)
    return run_dir, data


async def generate(pilot, screen: SampleScreen) -> None:
    await wait_for(pilot, lambda: "ready" in str(screen.query_one("#status", Static).render()), 60, "sampler ready")
    screen.query_one("#prompt", Input).value = "ROMEO:"
    screen.query_one("#set-max_new_tokens", Input).value = "5"
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: screen.history or "error" in str(screen.query_one("#status", Static).render()),
                   60, "a sample or an error")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setattr(pane, "sampler_argv", lambda: [*SAMPLER_ARGV, "--threads=1"])


def test_a_character_model_whose_data_is_gone_says_the_prompt_cant_be_encoded(tmp_path, shakespeare_chars):
    run_dir, data = trained(tmp_path, CHAR_ARGS, shakespeare_chars)

    async def go():
        app = ScreenHost(SampleScreen(run_dir, str(data)))
        async with app.run_test(size=(200, 40)) as pilot:
            await generate(pilot, screen := app.screen)
            assert not screen.history
            return str(screen.query_one("#status", Static).render())

    assert run(go()) == (f"error: data_dir {data} {GONE}: the prompt can't be encoded without its meta.pkl "
                         "(the model's 65-token vocabulary; found only GPT-2 BPE (bundled ranks))")


@pytest.mark.parametrize("model", ["gpt2", "char"])
def test_what_stands_in_for_a_data_dir_gone_is_said(tmp_path, shakespeare_chars, model):
    """A GPT-2 model: the bundled ranks. A character model: the meta.pkl nanoGPT's own rule finds
    (data/<dataset> beside the run), which may not be the vocabulary it was trained with."""
    if model == "gpt2":
        run_dir, data = trained(tmp_path, BPE_ARGS, shakespeare_chars)
        instead = "GPT-2 BPE (bundled ranks)"
    else:
        run_dir, data = trained(tmp_path, CHAR_ARGS, shakespeare_chars, dataset="gpttui_test_chars")
        other = tmp_path / "data" / "gpttui_test_chars"
        other.mkdir()
        write_meta_pkl(other / "meta.pkl", shakespeare_chars)
        instead = f"char vocabulary (65) from {other / 'meta.pkl'}"

    async def go():
        app = ScreenHost(SampleScreen(run_dir, str(data)))
        async with app.run_test(size=(200, 40)) as pilot:
            await generate(pilot, screen := app.screen)
            assert len(screen.history) == 1
            return flat(app, "#data-note")

    assert run(go()) == f"data_dir {data} {GONE}: using {instead} instead"


def test_no_note_while_the_data_dir_is_there(tmp_path, shakespeare_chars):
    run_dir, data = trained(tmp_path, BPE_ARGS, shakespeare_chars)
    data.mkdir()

    async def go():
        app = ScreenHost(SampleScreen(run_dir, str(data)))
        async with app.run_test(size=(200, 40)) as pilot:
            await generate(pilot, screen := app.screen)
            assert len(screen.history) == 1
            return screen.query_one("#data-note", Static).display

    assert run(go()) is False
