"""The extend-iterations screen, driven with the pilot: type a new end, read the screen, apply."""

import asyncio
import functools
import math
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Button

from gpttui.run import config as C
from gpttui.run.history import Eval
from gpttui.screens.extend import (
    ExtendScreen,
    describe_change,
    evals_between,
    extend_values,
    forecast_val_loss,
    parse_end,
)

UNSET = object()
TPI = 524288
# the seed user's run: 12 layers, cosine to 12,000, lr 3e-4 -> 3e-5
SEED = C.replace(C.DEFAULTS, max_iters=12000, lr_decay_iters=12000, warmup_iters=500,
                 learning_rate=3e-4, min_lr=3e-5, eval_interval=500, gradient_accumulation_steps=64,
                 batch_size=8)


def law(it: int) -> float:
    """A val loss that falls as a power law of the iterations."""
    return 3.2 + 6.0 * it ** -0.35


# with a little eval noise (+-0.01, as a few hundred eval batches give)
EVALS = [Eval(i, None, None, law(i) + 0.01 * (-1) ** (i // 500)) for i in range(500, 6001, 500)]


class Host(App):
    def __init__(self, screen) -> None:
        super().__init__()
        self.pushed = screen
        self.result = UNSET

    def on_mount(self) -> None:
        self.push_screen(self.pushed, self._done)

    def _done(self, result) -> None:
        self.result = result


def pilot_test(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        asyncio.run(fn(*args, **kwargs))
    return run


def flat(app: App, selector: str | None = None) -> str:
    """The shown text (in `selector`'s region if given), line breaks and spaces as one space."""
    strips = app.screen._compositor.render_strips()
    if selector is None:
        rows = [s.text for s in strips]
    else:
        r = app.screen.query_one(selector).content_region
        rows = [s.crop(r.x, r.right).text for s in strips[r.y:r.bottom]]
    return " ".join(" ".join(rows).split())


async def settle(pilot) -> None:
    """Let the forecast worker thread finish and its result reach the screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


# ---------------------------------------------------------------- pure parts

def test_parse_end_iterations_plus_and_token_budgets():
    kw = dict(current_iter=6000, max_iters=12000, tokens_per_iter=TPI)
    assert parse_end("24000", **kw) == 24000
    assert parse_end("24,000", **kw) == 24000
    assert parse_end("+2000", **kw) == 14000
    assert parse_end("6B", **kw) == math.ceil(6e9 / TPI) == 11445
    assert parse_end("12.6b", **kw) == math.ceil(12.6e9 / TPI)
    assert parse_end("+500M", **kw) == 12000 + math.ceil(500e6 / TPI)
    assert parse_end("2e10 tokens", **kw) == math.ceil(2e10 / TPI)
    assert parse_end("8000", **kw) == 8000   # shortening, still ahead of the run
    for bad, reason in [("lots", "is not iterations"), ("5000", "not beyond the current iteration 6,000"),
                        ("12000", "already max_iters"), ("1.5", "must be a whole number"),
                        ("", "type a new end"), ("1B", "not beyond the current iteration")]:
        with pytest.raises(ValueError, match=reason):
            parse_end(bad, **kw)


def test_cosine_moves_lr_decay_iters_with_max_iters_wsd_does_not():
    assert extend_values(SEED, 24000) == {"max_iters": 24000, "lr_decay_iters": 24000}
    early = C.replace(SEED, lr_decay_iters=10000)       # decay ended 2,000 before the end
    assert extend_values(early, 24000) == {"max_iters": 24000, "lr_decay_iters": 22000}
    assert extend_values(C.replace(SEED, lr_schedule="wsd"), 24000) == {"max_iters": 24000}


def test_describe_cosine_rate_rises_again_from_the_end():
    after = C.replace(SEED, **extend_values(SEED, 24000))
    text = describe_change(SEED, after, 12000)
    rise = C.lr_at(after, 12000) / C.lr_at(SEED, 12000)
    assert "lr_decay_iters moves with max_iters: 12,000 → 24,000" in text
    assert f"rises again from 3.00e-05 now to {C.lr_at(after, 12000):.2e} ({rise:.1f}×)" in text
    assert rise > 5


def test_describe_wsd_lengthens_the_stable_phase():
    wsd = C.replace(SEED, lr_schedule="wsd", decay_frac=0.2)
    after = C.replace(wsd, max_iters=24000)
    text = describe_change(wsd, after, 6000)
    assert "stable phase simply lengthens" in text
    assert "until iteration 19,200 (was 9,600)" in text
    assert "The rate now stays 3.00e-04." in text


def test_evals_between_counts_multiples():
    assert evals_between(6000, 12000, 500) == 12
    assert evals_between(6001, 6499, 500) == 0


def test_forecast_from_a_power_law_lands_near_it():
    """Constant lr: the schedule-aware fit is a power law, so it recovers the law."""
    const = C.replace(SEED, decay_lr=False, max_iters=6000)
    after = C.replace(const, max_iters=12000)
    f = forecast_val_loss(const, after, EVALS, 12000, 6000)
    assert f is not None and f.low < law(12000) < f.high
    assert abs(f.val_loss - law(12000)) / law(12000) < 0.01
    assert forecast_val_loss(const, after, EVALS[:2], 12000, 6000) is None


# ---------------------------------------------------------------- the screen

@pilot_test
async def test_finished_run_extended_to_twice_its_length():
    screen = ExtendScreen(SEED, current_iter=12000, tokens_per_iter=TPI, ms_per_iter=3900.0,
                          evals=EVALS, eval_overhead_s_per_eval=15.0, resume_iter=12000)
    app = Host(screen)
    async with app.run_test(size=(110, 40)) as pilot:
        await settle(pilot)
        now = flat(app, "#now")
        assert "iteration 12,000 of max_iters 12,000 · cosine: warmup 500, decay to 12,000" in now
        assert "6.29B tokens seen" in now
        assert "not running: Apply resumes it from its checkpoint at iteration 12,000" in now
        assert app.screen.query_one("#apply", Button).disabled

        await pilot.press(*"24000")
        await settle(pilot)
        summary = flat(app, "#summary")
        assert "max_iters 12,000 → 24,000, lr_decay_iters 12,000 → 24,000 (+12,000 iterations, 6.29B tokens)" in summary
        assert "The rate rises again from 3.00e-05 now to" in summary
        assert "12.58B tokens seen" in summary
        # 12,000 iterations at 3.9 s plus 24 evals of 15 s
        assert f"ETA {C.human_duration(12000 * 3.9 + 24 * 15)} (at 3,900 ms/iter + 24 evals × 15.0 s)" in summary
        assert "val loss at 24,000 ≈" in flat(app, "#forecast")
        assert "── after" in flat(app, "#legend")
        await pilot.press("enter")
        await pilot.pause()
    assert app.result == {"max_iters": 24000, "lr_decay_iters": 24000}


@pilot_test
async def test_bad_entries_are_marked_and_cannot_be_applied():
    screen = ExtendScreen(SEED, current_iter=6000, tokens_per_iter=TPI, ms_per_iter=None, evals=[])
    app = Host(screen)
    async with app.run_test(size=(100, 36)) as pilot:
        await pilot.press(*"5000")
        await settle(pilot)
        assert "✗ 5,000 is not beyond the current iteration 6,000" in flat(app, "#error")
        assert app.screen.query_one("#end").has_class("-invalid")
        assert app.screen.query_one("#apply", Button).disabled
        await pilot.press("enter", "ctrl+r")
        await pilot.pause()
        assert app.result is UNSET
        assert "ETA unknown until the run has measured its speed" in flat(app, "#summary")
        assert "no val-loss forecast yet" in flat(app, "#forecast")

        await pilot.press("backspace", "backspace", "backspace", "backspace", *"+6B")
        await settle(pilot)
        assert flat(app, "#error") == ""
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None


@pilot_test
async def test_token_budget_on_a_wsd_run():
    wsd = C.replace(SEED, lr_schedule="wsd")
    app = Host(ExtendScreen(wsd, current_iter=3000, tokens_per_iter=TPI, ms_per_iter=100.0, evals=EVALS))
    async with app.run_test(size=(100, 36)) as pilot:
        await pilot.press(*"12B")
        await settle(pilot)
        n = math.ceil(12e9 / TPI)
        summary = flat(app, "#summary")
        assert f"max_iters 12,000 → {n:,}" in summary and "lr_decay_iters" not in summary
        assert "stable phase simply lengthens" in summary
        await pilot.click("#apply")
        await pilot.pause()
    assert app.result == {"max_iters": n}


# ---------------------------------------------------------------- in the real app, with a real engine

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def tiny_run_config(root, **changes) -> Path:
    """A tiny character model on tiny data (nanoGPT's format), as a TOML config."""
    import numpy as np

    from gpttui.data.metapkl import write_meta_pkl

    data = root / "data"
    data.mkdir()
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT], dtype=np.uint16)
    ids[:2400].tofile(data / "train.bin")
    ids[2400:].tofile(data / "val.bin")
    write_meta_pkl(data / "meta.pkl", chars)
    cfg = C.replace(C.DEFAULTS, out_dir=str(root / "run"), data_dir=str(data), n_layer=1, n_head=2,
                    n_embd=32, block_size=16, batch_size=4, gradient_accumulation_steps=1,
                    device="cpu", dtype="float32", compile=False, threads=1, eval_iters=2,
                    log_interval=1, learning_rate=1e-3, min_lr=1e-4, warmup_iters=2,
                    always_save_checkpoint=True, **changes)
    C.save(cfg, root / "tiny.toml")
    return root / "tiny.toml"


async def wait_for(pilot, pred, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def config_events(run_dir) -> list[dict]:
    import json

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == "config"]


@pytest.mark.timeout(180)
@pilot_test
async def test_e_extends_a_running_run_then_a_finished_one(tmp_path):
    from gpttui.app import GpttuiApp
    from gpttui.commands.launch import make_plan

    plan = make_plan(str(tiny_run_config(tmp_path, max_iters=300, lr_decay_iters=300, eval_interval=50)), [])
    app = GpttuiApp(plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.live.iter >= 5, 60, "the engine to train")
        await pilot.press("space")  # pause, so the run can't end before the change lands
        await wait_for(pilot, lambda: app.live.state == "paused", 40, "paused")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 5, "the extend screen")
        assert f"iteration {app.live.iter:,} of max_iters 300" in flat(app, "#now")
        await pilot.press("6", "0", "0", "enter")
        await wait_for(pilot, lambda: config_events(plan.run_dir), 30, "the engine's config event")
        assert config_events(plan.run_dir)[-1]["changes"] == {"max_iters": 600, "lr_decay_iters": 600}
        await wait_for(pilot, lambda: app.live.max_iters == 600 and "/600" in flat(app), 5,
                       "the status line's max to change")
        await pilot.press("space")
        await wait_for(pilot, lambda: app.live.state == "finished" and not app.engine_alive, 90,
                       "the run to finish and its engine to exit")
        assert app.live.iter > 300  # trained past the old end

        # a finished run: extending resumes it from its checkpoint with the new end
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExtendScreen), 5, "the extend screen")
        assert "not running: Apply resumes it from its checkpoint" in flat(app, "#now")
        await pilot.press("+", "1", "0", "enter")
        await wait_for(pilot, lambda: app.live.max_iters == 610 and app.live.iter > 600, 60,
                       "the resumed run to train past 600")
        assert app.live.hello["config"]["lr_decay_iters"] == 610
        await pilot.press("x")
        await pilot.pause(0.5)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.engine_alive, 30, "the engine to stop")
        assert app.ui_errors == []  # checked before the app shuts down
