"""What the dashboard looks like, as SVG snapshots (pytest-textual-snapshot), at 80x24 and
120x40: a nanoGPT log opened read-only. (Pictures of a scripted training run were taken too, but
they differed from run to run in the order the panels caught up; they come back once that is
pinned down.) The figures that would tick are fed fixed values where the dashboard reads them:
the status line's clock and the system figures' probe. Each test waits for what is drawn to be
final before the picture is taken. `pytest tests/test_snapshots.py --snapshot-update` writes new pictures (look
at them before committing: `tests/__snapshots__/test_snapshots/`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from app_helpers import wait_for

from gpttui.app import GpttuiApp
from gpttui.viewer import ReadOnlyRuns
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import Figures, SystemFigures

pytestmark = pytest.mark.timeout(120)

LOG_124M = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "train_log_fineweb_124m.txt"
NOW = 1_790_000_000.0   # the status line's clock
SIZES = [(80, 24), (120, 40)]


class FixedProbe:
    """System figures as a quiet machine would show them."""

    def read(self) -> Figures:
        return Figures(cpu="12%", ram="3.1/24G")


def fix_ticking_figures(app: GpttuiApp) -> None:
    """The clock and the system figures, where the dashboard reads them."""
    for screen in app.screen_stack:
        for status in screen.query(StatusLine):
            status.clock = lambda: NOW
        for system in screen.query(SystemFigures):
            system.probe = FixedProbe()
            system.sample()


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
