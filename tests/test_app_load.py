"""The dashboard under load: a scripted emitter (not the engine) writing 1000 step events a
second. The UI must take every event (none dropped) while redrawing the chart at a bounded
rate, not per event. How far behind it runs is measured by bench/ui_overhead.py, not here."""

from __future__ import annotations

import sys
import time

import pytest
from app_helpers import dashboard, run, tiny_config, wait_for

from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.ipc.process import ProtocolProcess
from gpttui.screens.dashboard import CHART_HZ
from gpttui.widgets.loss_chart import LossChart

pytestmark = pytest.mark.timeout(120)

RATE, SECONDS = 1000, 4


def emitter(rate: int, seconds: int) -> str:
    """A script writing `rate` step events a second for `seconds`, an eval every 250 steps."""
    return f"""
import sys, time
from gpttui.run import protocol
out = sys.stdout
out.write(protocol.encode(protocol.event("hello", 0, version=1, config={{"max_iters": 10**6, "eval_interval": 250}},
    params={{"total": 1000, "nanogpt": 1000, "non_embedding": 10}}, device="cpu", dtype="float32",
    peak_flops=1e11, tokens_per_iter=64, start_iter=0, max_iters=10**6)))
out.write(protocol.encode(protocol.event("state", 0, state="running")))
t0 = time.time()
n = {rate} * {seconds}
for i in range(n):
    while time.time() < t0 + i / {rate}:
        time.sleep(0.0005)
    out.write(protocol.encode(protocol.event("step", i, loss=3.0 - i / n, lr=1e-3, dt_ms=1.0, tokens_per_s=64000.0,
                                             mfu=0.1, grad_norm=1.0, tokens=64 * (i + 1))))
    if i % 250 == 0:
        out.write(protocol.encode(protocol.event("eval", i, train_loss=3.0 - i / n, val_loss=3.1 - i / n)))
    if i % 100 == 0:
        sys.stderr.write(f"iter {{i}}\\n")
    out.flush()
out.write(protocol.encode(protocol.event("state", n, state="finished")))
"""


def test_a_thousand_events_a_second_without_falling_behind(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    plan.start = False

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading, 10)
            chart = dashboard(app).query_one(LossChart)
            builds0 = chart.builds
            ctl.engine = ProtocolProcess([sys.executable, "-c", emitter(RATE, SECONDS)])
            t0 = time.monotonic()
            while ctl.engine is not None and time.monotonic() - t0 < SECONDS + 60:
                await pilot.pause(0.2)
            took = time.monotonic() - t0
            return (ctl.live.iter, ctl.live.dropped, len(ctl.live.history.evals), ctl.live.state,
                    chart.builds - builds0, took, app.ui_errors)

    it, dropped, evals, state, builds, took, ui_errors = run(go())
    assert ui_errors == []
    assert it == RATE * SECONDS and dropped == 0 and evals == RATE * SECONDS // 250 and state == "finished"
    assert 1 <= builds <= CHART_HZ * took + 3  # redrawn in the dashboard's frames, not per event
