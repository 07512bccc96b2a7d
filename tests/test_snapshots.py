"""What the dashboard looks like, as SVG snapshots (pytest-textual-snapshot), at 80x24 and
120x40: a run training, paused, killed, and a nanoGPT log opened read-only.

The run is a scripted engine: a process that writes a fixed stream of protocol events (fixed
times, losses, rates) and a fixed log, then waits for its stop command (or is killed). The
figures that would tick are fed fixed values where the dashboard reads them: the status line's
clock and the system figures' probe. Each test waits for what is drawn to be final before the
picture is taken. `pytest tests/test_snapshots.py --snapshot-update` writes new pictures (look
at them before committing: `tests/__snapshots__/test_snapshots/`).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
from app_helpers import text_of, tiny_config, wait_for

from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.ipc.process import ProtocolProcess
from gpttui.screens.failure import FailureScreen
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets import fmt
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.spark import SparkPanel
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import Figures, SystemFigures

pytestmark = pytest.mark.timeout(120)

LOG_124M = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt"
T0 = 1_790_000_000.0       # the scripted run's first event
STEPS, MAX_ITERS, EVAL_EVERY = 600, 2000, 250
NOW = T0 + 0.5 + STEPS * 0.05 + 2.0     # the status line's "now": two seconds after the last step
SIZES = [(80, 24), (120, 40)]

ENGINE = """
import os, signal, sys
sys.stdout.write(open(sys.argv[1]).read()); sys.stdout.flush()
sys.stderr.write(open(sys.argv[2]).read()); sys.stderr.flush()
if sys.argv[3] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
for line in sys.stdin:   # until the app stops it (or closes the pipe)
    if '"stop"' in line:
        break
"""


class FixedProbe:
    """System figures as a quiet machine would show them."""

    def read(self) -> Figures:
        return Figures(cpu="12%", ram="3.1/24G")


def scripted_events(end_state: str) -> list[dict]:
    """A run of STEPS steps of a small char model, evals every EVAL_EVERY, at 50 ms a step."""
    hello = dict(type="hello", iter=0, t=T0, version=1, device="cpu", dtype="float32", peak_flops=1e11,
                 tokens_per_iter=768, start_iter=0, max_iters=MAX_ITERS,
                 config={"max_iters": MAX_ITERS, "eval_interval": EVAL_EVERY, "eval_iters": 20},
                 params={"total": 800_000, "nanogpt": 795_904, "non_embedding": 787_584})
    events = [hello, dict(type="state", iter=0, t=T0 + 0.1, state="running")]
    for i in range(STEPS):
        t = T0 + 0.5 + i * 0.05
        loss = 2.6 * math.exp(-i / 180) + 1.55 + 0.04 * math.sin(i * 1.7)
        if i % EVAL_EVERY == 0:
            val = 2.6 * math.exp(-i / 180) + 1.62
            events += [dict(type="eval", iter=i, t=t - 0.02, train_loss=round(val - 0.05, 4), val_loss=round(val, 4)),
                       dict(type="checkpoint", iter=i, t=t - 0.01, path="ckpt.pt", val_loss=round(val, 4))]
        events.append(dict(type="step", iter=i, t=round(t, 3), loss=round(loss, 4), dt_ms=50.0,
                           lr=round(1e-3 * min(1.0, (i + 1) / 100), 7), tokens_per_s=15360.0 + 40 * math.sin(i),
                           mfu=0.0041 + 0.0001 * math.sin(i / 7), grad_norm=round(0.4 + 0.5 * math.exp(-i / 120), 4),
                           tokens=768 * (i + 1)))
    if end_state == "paused":
        events.append(dict(type="state", iter=STEPS, t=T0 + 0.5 + STEPS * 0.05, state="paused"))
    return events


ENGINE_LOG = """\
training on cpu in float32: the CPU's fast path
tokens per iteration will be: 768
found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)
number of parameters: 0.80M
step 0: train loss 4.1200, val loss 4.1700
iter 0: loss 4.1882, time 51.02ms, mfu 0.41%, tok/s 15,360, lr 1.00e-05, grad norm 0.900
step 250: train loss 1.9000, val loss 1.9500
saving checkpoint to run/ckpt.pt
iter 590: loss 1.6000, time 50.00ms, mfu 0.41%, tok/s 15,360, lr 1.00e-03, grad norm 0.410
"""


def training_app(tmp_path: Path, char_data: Path, end: str) -> tuple[GpttuiApp, list[str]]:
    """The dashboard on ./run (nothing started), and the scripted engine's command line."""
    config = tiny_config(tmp_path, char_data, out_dir="run", max_iters=MAX_ITERS, eval_interval=EVAL_EVERY)
    plan = make_plan(str(config.relative_to(tmp_path)), [])
    plan.start = False   # the scripted engine stands in for the real one (whose figures never repeat)
    events, log = tmp_path / "events.jsonl", tmp_path / "engine.err"
    events.write_text("".join(json.dumps(e) + "\n" for e in scripted_events(end)))
    log.write_text(ENGINE_LOG)
    return GpttuiApp(plan), [sys.executable, "-c", ENGINE, str(events), str(log), end]


def fix_ticking_figures(app: GpttuiApp) -> None:
    """The clock and the system figures, where the dashboard reads them."""
    for screen in app.screen_stack:
        for status in screen.query(StatusLine):
            status.clock = lambda: NOW
        for system in screen.query(SystemFigures):
            system.probe = FixedProbe()
            system.sample()


def captions(screen) -> list[str]:
    return [text_of(panel.query_one(".caption")) for panel in screen.query(SparkPanel)]


async def drawn(pilot, engine: list[str], state: str) -> None:
    """Start the scripted engine once the (empty) history is read; wait until every panel shows
    the end of its script."""
    app = pilot.app
    ctl = app.controller
    await wait_for(pilot, lambda: not ctl.loading, 30, "the history read")
    fix_ticking_figures(app)
    ctl.engine = ProtocolProcess(engine)
    await wait_for(pilot, lambda: ctl.live.iter == STEPS, 60, "the scripted steps")
    dash = next(s for s in app.screen_stack if s.query(LossChart))
    chart = dash.query_one(LossChart)
    last_loss = fmt.loss(ctl.live.loss)
    await wait_for(pilot, lambda: not chart.stale(), 10, "the chart with every step")
    await wait_for(pilot, lambda: dash.query_one(EvalTable).row_count == 3, 10, "three evals")
    await wait_for(pilot, lambda: last_loss in captions(dash)[0] and all("–" in c for c in captions(dash)), 10,
                   "the sparklines with their ranges")
    await wait_for(pilot, lambda: text_of(dash.query_one(StatusLine)).startswith(f" {state} "), 30, f"state {state}")
    log = dash.query_one(LogPane)
    await wait_for(pilot, lambda: any("iter 590" in line for line in log.lines) and (
        state == "failed" or log.scroll_y == log.max_scroll_y), 10, "the engine's log, scrolled to its end")
    if state == "failed":
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen), 30, "the failure screen")
    await pilot.pause(1.2)   # one more status tick: the same picture again


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("end,state", [("running", "running"), ("paused", "paused"), ("killed", "failed")])
def test_training_dashboard(snap_compare, tmp_path, char_data, monkeypatch, size, end, state):
    monkeypatch.chdir(tmp_path)   # the run dir reads "run" on screen, wherever the test runs
    app, engine = training_app(tmp_path, char_data, end)
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: drawn(pilot, engine, state))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_read_only_log(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    shutil.copy(LOG_124M, tmp_path / "train_log.txt")
    app = GpttuiApp(ReadOnlyRuns([Path("train_log.txt")]))

    async def opened(pilot) -> None:
        ctl = pilot.app.controller
        await wait_for(pilot, lambda: not ctl.loading and ctl.live.history.evals, 60, "the log read")
        fix_ticking_figures(pilot.app)
        chart = pilot.app.screen.query_one(LossChart)
        await wait_for(pilot, lambda: not chart.stale() and chart.builds, 10, "the chart")
        await wait_for(pilot, lambda: pilot.app.screen.query_one(EvalTable).row_count == 21, 10, "the evals")
        await pilot.pause(1.2)
    assert snap_compare(app, terminal_size=size, run_before=opened)
