"""What the dashboard looks like, as SVG snapshots (pytest-textual-snapshot), at 80x24 and
120x40: a run training, paused, killed (the failure screen over it), and a nanoGPT log opened
read-only.

No engine runs: the training run's first session is written to its metrics.jsonl directly, and
its resumed session reaches the app through the channel a real engine's events take
(app_helpers.ScriptedEngine: events and log lines waiting in the inbox, then a running engine
or an exit code). Every event has a fixed time, so the ETA is fixed too; the clock and the
system figures come from the app's `machine` (widgets/system.py), fixed here. Each test waits
for what is drawn to be final before the picture is taken.
`pytest tests/test_snapshots.py --snapshot-update` writes new pictures (look at them before
committing: `tests/__snapshots__/test_snapshots/`).
"""

from __future__ import annotations

import math
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from app_helpers import TINY, ScriptedEngine, dashboard, footer_text, run, screen_text, text_of, wait_for

from gpttui.app import GpttuiApp, LaunchPlan
from gpttui.run import config as C
from gpttui.run import layout, protocol
from gpttui.run.metrics import MetricsWriter
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.failure import FailureScreen
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets import fmt
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.spark import SparkPanel
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import Figures, Machine

pytestmark = pytest.mark.timeout(120)

LOG_124M = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt"
SIZES = [(80, 24), (120, 40)]

T0 = 1_790_000_000.0                      # the run's first event
MAX_ITERS, EVAL_EVERY = 2000, 250
STOPPED_AT, STEPS = 400, 600               # the first session stopped (x) here; the second got this far
STEP_S, EVAL_S = 0.05, 1.0                 # an iteration; an eval (and its checkpoint)
TOKENS_PER_ITER = TINY["batch_size"] * TINY["block_size"]


class QuietMachine:
    """System figures as a quiet machine would show them."""

    def read(self) -> Figures:
        return Figures(cpu="12%", ram="3.1/24G")


def fixed_machine(now: float) -> Machine:
    return Machine(clock=lambda: now, figures=QuietMachine)


# ---------------------------------------------------------------- the scripted run

def event(kind: str, it: int, t: float, **fields: Any) -> dict[str, Any]:
    """An event as the engine makes it, at time `t`."""
    return {**protocol.event(kind, it, **fields), "t": round(t, 3)}


def session(cfg: C.TrainConfig, first: int, last: int, t: float) -> tuple[list[dict[str, Any]], float]:
    """An engine's events from `first` to `last` (its hello, steps, evals every EVAL_EVERY and a
    checkpoint at each past iteration 0), starting at time `t`; and the time after the last."""
    events = [event("hello", first, t, version=1, config=cfg.to_dict(), device="cpu", dtype="float32",
                    params={"total": 14_400, "nanogpt": 14_000, "non_embedding": 12_500}, peak_flops=1e11,
                    tokens_per_iter=TOKENS_PER_ITER, start_iter=first, max_iters=MAX_ITERS),
              event("state", first, t + 0.1, state="running")]
    t += 0.5
    for i in range(first, last):
        if i % EVAL_EVERY == 0:
            val = round(2.6 * math.exp(-i / 180) + 1.62, 4)
            events.append(event("eval", i, t, train_loss=round(val - 0.05, 4), val_loss=val))
            if i:
                events.append(event("checkpoint", i, t + EVAL_S / 2, path=f"run/{layout.CKPT}", val_loss=val))
            t += EVAL_S
        events.append(event("step", i, t, loss=round(2.6 * math.exp(-i / 180) + 1.55 + 0.04 * math.sin(i * 1.7), 4),
                            lr=round(1e-3 * min(1.0, (i + 1) / 100), 7), dt_ms=STEP_S * 1000,
                            tokens_per_s=TOKENS_PER_ITER / STEP_S * (1 + 0.01 * math.sin(i)),
                            mfu=0.0041 + 0.0001 * math.sin(i / 7), grad_norm=round(0.4 + 0.5 * math.exp(-i / 120), 4),
                            tokens=TOKENS_PER_ITER * (i + 1)))
        t += STEP_S
    return events, t


def engine_log(events: list[dict[str, Any]]) -> list[str]:
    """The resumed engine's last log lines, in nanoGPT's words: its last checkpoint and step."""
    step = next(e for e in reversed(events) if e["type"] == "step")
    return ["saving checkpoint to run",
            f"iter {step['iter']}: loss {step['loss']:.4f}, time {step['dt_ms']:.2f}ms, "
            f"mfu {100 * step['mfu']:.2f}%, tok/s {step['tokens_per_s']:,.0f}"]


def write_checkpoint(path: Path, iter_num: int) -> None:
    """What the dashboard reads of a checkpoint (its iteration), in torch.save's zip layout."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ckpt/data.pkl", pickle.dumps({"iter_num": iter_num}, protocol=2))


def resumed_run(char_data: Path, end: str) -> tuple[GpttuiApp, ScriptedEngine]:
    """The dashboard on ./run, whose first session (to STOPPED_AT, then stopped) is on disk, and
    the engine of its second: resumed there, at STEPS now and `end` (running, paused, killed)."""
    run_dir = Path("run")
    run_dir.mkdir()
    cfg = C.replace(C.DEFAULTS, **{**TINY, "out_dir": str(run_dir), "data_dir": str(char_data),
                                   "max_iters": MAX_ITERS, "lr_decay_iters": MAX_ITERS,
                                   "eval_interval": EVAL_EVERY, "eval_iters": 20})
    C.save(cfg, run_dir / layout.CONFIG)
    first, t = session(cfg, 0, STOPPED_AT, T0)
    best = min(e["val_loss"] for e in first if e["type"] == "eval")
    first += [event("checkpoint", STOPPED_AT, t + 0.2, path=f"run/{layout.CKPT}", val_loss=best),
              event("state", STOPPED_AT, t + 0.3, state="stopped")]
    with MetricsWriter(run_dir / layout.METRICS) as writer:
        for e in first:
            writer.write(e)
    second, t = session(cfg, STOPPED_AT, STEPS, t + 0.8)
    if end == "paused":
        second.append(event("state", STEPS, t, state="paused"))
    write_checkpoint(run_dir / layout.CKPT, 500)   # the second session's last
    engine = ScriptedEngine(second, engine_log(second), exit_code=-9 if end == "killed" else None)
    app = GpttuiApp(LaunchPlan(run_dir, C.load(run_dir), start=False), machine=fixed_machine(t + 2.0))
    return app, engine


def captions(screen) -> list[str]:
    return [text_of(panel.query_one(".caption")) for panel in screen.query(SparkPanel)]


async def drawn(pilot, engine: ScriptedEngine, state: str) -> None:
    """Give the app its engine once the history is read; wait until every panel shows the end."""
    app = pilot.app
    ctl = app.controller
    await wait_for(pilot, lambda: not ctl.loading, 30, "the history read")
    ctl.engine = engine
    await wait_for(pilot, lambda: ctl.live.iter == STEPS, 30, "the resumed session's events")
    dash = dashboard(app)
    chart = dash.query_one(LossChart)
    last_loss = fmt.loss(ctl.live.loss)
    await wait_for(pilot, lambda: not chart.stale() and chart.builds, 10, "the chart with every step")
    await wait_for(pilot, lambda: dash.query_one(EvalTable).row_count == 3, 10, "three evals")
    await wait_for(pilot, lambda: last_loss in captions(dash)[0] and all("–" in c for c in captions(dash)), 10,
                   "the sparklines with their ranges")
    await wait_for(pilot, lambda: text_of(dash.query_one(StatusLine)).startswith(f" {state} "), 10, f"state {state}")
    log = dash.query_one(LogPane)
    await wait_for(pilot, lambda: any(f"iter {STEPS - 1}" in line for line in log.lines)
                   and log.scroll_y == log.max_scroll_y, 10, "the engine's log, scrolled to its end")
    if state == "failed":
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen) and app.screen.query_one("#details"), 10,
                       "the failure screen")
        details = app.screen.query_one("#details")
        await wait_for(pilot, lambda: details.scroll_y == details.max_scroll_y, 10, "the log's last lines")
    else:
        key = "Resume" if state == "paused" else "Pause"
        await wait_for(pilot, lambda: key in footer_text(app), 10, f"{key} in the footer")
    await settled(pilot)


async def settled(pilot) -> None:
    """Until the top screen shows the same text twice, a second apart (every panel's own timer
    has fired in between)."""
    before = None
    for _ in range(10):
        now = screen_text(pilot.app)
        if now == before:
            return
        before = now
        await pilot.pause(1.1)
    raise AssertionError("the screen never settled")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("end,state", [("running", "running"), ("paused", "paused"), ("killed", "failed")])
def test_training_dashboard(snap_compare, tmp_path, char_data, monkeypatch, size, end, state):
    monkeypatch.chdir(tmp_path)   # the run dir reads "run" on screen, wherever the test runs
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))   # the default keys, whatever keymap.toml a user has
    app, engine = resumed_run(char_data, end)
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: drawn(pilot, engine, state))
    assert app.ui_errors == []


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_read_only_log(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    shutil.copy(LOG_124M, tmp_path / "train_log.txt")
    app = GpttuiApp(ReadOnlyRuns([Path("train_log.txt")]), machine=fixed_machine(T0))

    async def opened(pilot) -> None:
        ctl = pilot.app.controller
        await wait_for(pilot, lambda: not ctl.loading and ctl.live.history.evals, 60, "the log read")
        chart = pilot.app.screen.query_one(LossChart)
        await wait_for(pilot, lambda: not chart.stale() and chart.builds, 10, "the chart")
        await wait_for(pilot, lambda: pilot.app.screen.query_one(EvalTable).row_count == 21, 10, "the evals")
        await settled(pilot)
    assert snap_compare(app, terminal_size=size, run_before=opened)


# (key that opens it, keys that close it) over a run training; q and x ask, n answers "keep training"
SCREENS = {"help": ("question_mark", "escape"), "config": ("c", "escape"), "extend": ("e", "escape"),
           "doctor": ("d", "escape"), "sample": ("g", "escape"), "quit question": ("q", "n"),
           "stop question": ("x", "n")}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_each_screen_opened_and_closed_over_a_training_run_leaves_the_dashboard_as_it_was(
        tmp_path, char_data, monkeypatch, size):
    """(test_app.py does the same over a finished run, which has no quit or stop question.)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    app, engine = resumed_run(char_data, "running")

    async def go() -> tuple[str, dict[str, str], list[dict]]:
        async with app.run_test(size=size) as pilot:
            await drawn(pilot, engine, "running")
            before, changed = screen_text(app), {}
            for name, (open_key, close_key) in SCREENS.items():
                await pilot.press(open_key)
                await wait_for(pilot, lambda: not isinstance(app.screen, DashboardScreen), 10, f"the {name}")
                await pilot.press(close_key)
                await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, f"the {name} closed")
                await settled(pilot)
                if (after := screen_text(app)) != before:
                    changed[name] = after
            return before, changed, list(engine.sent)   # (the app's exit sends a stop after this)

    before, changed, sent = run(go())
    assert " running " in before and "ETA 1m 16s" in before and "space Pause" in before
    assert changed == {}, f"the dashboard changed after: {', '.join(changed)}"
    assert sent == [] and app.ui_errors == []   # answering n sent nothing
