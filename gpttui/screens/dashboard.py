"""The dashboard: a run's live panels and the keys that control it.

The panels read `app.live` (a `LiveRun`); the app drains the engine on a ~10 Hz timer and
calls `refresh_panels()`, which touches a panel only when its data changed. The chart is
rebuilt at most CHART_HZ times a second.

Keys for screens other modules own (e extend, c config, g sample, d doctor) import the
module `gpttui.screens.<name>` lazily and push its `<Name>Screen()` (no arguments: it reads
the app's public API - `run_dir`, `loaded`, `config`, `history`, `ms_per_iter`, `send()`).
A module that is not there yet gets a notification instead. The extend screen dismisses
with the `set` values to send; the config screen with {"changes": {...}, "action":
"live" | "restart" | "new_run"}.
"""

from __future__ import annotations

import importlib
import time
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from gpttui.screens.confirm import Choice, ConfirmScreen
from gpttui.screens.help import HelpScreen
from gpttui.widgets import fmt
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.header import RunHeader
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.spark import SparkPanel
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import SystemFigures

if TYPE_CHECKING:
    from gpttui.app import GpttuiApp

CHART_HZ = 2.0   # chart rebuilds per second at most (plotext + Rich: ~10 ms each)
PANEL_HZ = 2.0   # sparklines and the eval table
STATUS_HZ = 4.0  # the status line's figures (a state change shows at once)

# key -> (module under gpttui.screens, screen class, what it is called in a notification)
OTHER_SCREENS = {
    "extend": ("extend", "ExtendScreen", "Extend iterations"),
    "config": ("config", "ConfigScreen", "The config editor"),
    "sample": ("sample", "SampleScreen", "Sampling"),
    "doctor": ("doctor", "DoctorScreen", "The run doctor"),
}


class DashboardScreen(Screen):
    # Footer order: what a user needs first fits in 80 columns.
    BINDINGS = [
        Binding("space,p", "toggle_pause", "Pause", key_display="space", tooltip="pause or resume training"),
        Binding("s", "save", "Save", tooltip="save a checkpoint now"),
        Binding("x", "stop", "Stop", tooltip="save a checkpoint and stop the engine (asks first)"),
        Binding("r", "resume_run", "Resume", tooltip="start the engine again from the last checkpoint"),
        Binding("q", "quit_app", "Quit", tooltip="quit (asks whether to stop the run and save)"),
        Binding("question_mark", "help", "Help", tooltip="this list"),
        Binding("v", "evaluate", "Eval", tooltip="evaluate train and val loss now"),
        Binding("e", "open('extend')", "Extend", tooltip="train longer: change max_iters"),
        Binding("c", "open('config')", "Config", tooltip="edit the config (live, restart or new run)"),
        Binding("g", "open('sample')", "Sample", tooltip="generate text from a checkpoint"),
        Binding("d", "open('doctor')", "Doctor", tooltip="judge the run: trends, forecast, MFU"),
        Binding("a", "chart('x')", "X axis", show=False, tooltip="chart x axis: iteration / tokens seen / run time"),
        Binding("l", "chart('log')", "Log y", show=False, tooltip="chart: log-scale y axis on/off"),
        Binding("left_square_bracket", "chart('less')", "Less smooth", show=False, tooltip="chart: less smoothing (down to off)"),
        Binding("right_square_bracket", "chart('more')", "More smooth", show=False, tooltip="chart: more smoothing"),
        Binding("z", "chart('zoom')", "Zoom", show=False, tooltip="chart: whole run / last 5000 / 1000 / 200 iterations"),
    ]

    app: "GpttuiApp"

    def compose(self) -> ComposeResult:
        live = self.app.live
        yield RunHeader(id="header")
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            yield LossChart(live, id="chart")
            with Vertical(id="side"):
                yield SparkPanel("loss", fmt.loss, id="spark-loss")
                yield SparkPanel("MFU", lambda v: "—" if v is None else f"{100 * v:.1f}%", id="spark-mfu")
                yield SparkPanel("tokens/s", fmt.count, id="spark-tps")
                yield SparkPanel("lr", fmt.number, id="spark-lr")
                yield SparkPanel("grad norm", fmt.number, id="spark-gn")
                yield SystemFigures(id="system")
        with Horizontal(id="bottom"):
            yield EvalTable(id="evals")
            yield LogPane(id="log")
        yield Footer(compact=True, show_command_palette=False)

    def __init__(self) -> None:
        super().__init__()
        self._chart_at = self._panels_at = 0.0
        self._status_key: tuple | None = None
        self._status_version, self._status_at = -1, 0.0
        self._panels_version = -1
        self._chart_data: tuple | None = None
        self._ready = False  # set in on_mount (Screen.is_mounted is still False there)

    def on_mount(self) -> None:
        self.query_one("#evals").border_title = "evals"
        self.query_one("#log").border_title = "engine log"
        self._ready = True
        self.refresh_panels(force=True)

    # ------------------------------------------------------------ panels

    def rebind(self) -> None:
        """The app replaced its LiveRun (a history loaded, a new run): redraw everything."""
        self.query_one(LossChart).live = self.app.live
        self.query_one(EvalTable)._shown = -1
        self.refresh_panels(force=True)

    def refresh_panels(self, force: bool = False) -> None:
        """Redraw what changed: the status line at STATUS_HZ (a new state or pending command at
        once), the slower panels at PANEL_HZ, the chart at CHART_HZ."""
        if not self._ready:
            return  # (the history can be read before the panels exist)
        app, live = self.app, self.app.live
        now = time.monotonic()
        said = (app.display_state, app.pending)  # a key's effect: shown on the next tick
        if force or said != self._status_key or (
                live.version != self._status_version and now - self._status_at >= 1.0 / STATUS_HZ) \
                or now - self._status_at >= 1.0:  # elapsed ticks on
            self._status_key, self._status_version, self._status_at = said, live.version, now
            self.query_one(RunHeader).show(live, app.run_dir, app.header_note, app.config)
            self.query_one(StatusLine).show(live, app.display_state, app.pending)
        if force or (live.version != self._panels_version and now - self._panels_at >= 1.0 / PANEL_HZ):
            self._panels_version, self._panels_at = live.version, now
            self.query_one("#spark-loss", SparkPanel).show(_losses(live), live.version)
            self.query_one("#spark-mfu", SparkPanel).show(live.mfu, live.version)
            self.query_one("#spark-tps", SparkPanel).show(live.tokens_per_s, live.version)
            self.query_one("#spark-lr", SparkPanel).show(live.lr, live.version)
            self.query_one("#spark-gn", SparkPanel).show(live.grad_norm, live.version)
            self.query_one(EvalTable).show(live)
        data = (live.series.version, live.evals_version, id(live))
        if force or (data != self._chart_data and now - self._chart_at >= 1.0 / CHART_HZ):
            self._chart_at, self._chart_data = now, data
            self.query_one(LossChart).refresh()  # settings and size changes refresh it themselves

    def write_log(self, lines: list[str]) -> None:
        self.query_one(LogPane).write_lines(lines)

    # ------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that do nothing now (None greys them out in the footer)."""
        app = self.app
        if action in ("toggle_pause", "save", "evaluate", "stop"):
            return True if app.engine_alive else None
        if action == "resume_run":
            return app.can_resume
        return True

    def action_toggle_pause(self) -> None:
        if self.app.display_state == "paused":
            self.app.command("resume", pending="resuming…")
        else:
            self.app.command("pause", pending="pausing…")

    def action_save(self) -> None:
        self.app.command("save", pending="saving a checkpoint…")

    def action_evaluate(self) -> None:
        self.app.command("eval", pending="evaluating…")

    def action_stop(self) -> None:
        app = self.app
        msg = (f"Save a checkpoint at iteration {app.live.iter:,} and stop the engine. "
               "You can resume later (r, or gpttui launch on the run directory).")
        self.app.push_screen(
            ConfirmScreen("Stop the run?", msg, [Choice("stop", "Stop and save", "y", "primary"),
                                                 Choice("cancel", "Keep training", "n")]),
            lambda answer: answer == "stop" and app.stop_engine())

    def action_quit_app(self) -> None:
        self.app.request_quit()

    def action_resume_run(self) -> None:
        self.app.resume_run()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(list(self.BINDINGS)))

    def action_chart(self, what: str) -> None:
        chart = self.query_one(LossChart)
        if what == "x":
            chart.cycle_x_axis()
        elif what == "log":
            chart.log_y = not chart.log_y
        elif what == "less":
            chart.step_smoothing(-1)
        elif what == "more":
            chart.step_smoothing(+1)
        elif what == "zoom":
            chart.cycle_zoom()
        chart.refresh()

    def action_open(self, name: str) -> None:
        module, cls, title = OTHER_SCREENS[name]
        try:
            mod = importlib.import_module(f"gpttui.screens.{module}")
            screen_cls = getattr(mod, cls)
        except (ImportError, AttributeError):
            self.notify(f"{title} is not available yet.", severity="warning")
            return
        try:
            screen = screen_cls()
        except Exception as e:  # another module's bug must not take the dashboard down
            self.notify(f"{title} failed to open: {e}", severity="error")
            return
        self.app.push_screen(screen, lambda result: self._screen_result(name, result))

    def _screen_result(self, name: str, result: Any) -> None:
        if not result:
            return
        app = self.app
        if name == "extend" and isinstance(result, dict):
            app.apply_changes(result, "live")
        elif name == "config" and isinstance(result, dict):
            app.apply_changes(result.get("changes") or {}, result.get("action", "live"))


def _losses(live) -> list[float]:
    return [p[3] for p in list(live.series.raw)[-512:]]
