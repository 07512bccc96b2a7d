"""The dashboard: a run's live panels and the keys that control it.

The panels read the `RunController` the screen was made with. On each `RunUpdated` the app
posts (several a second), `refresh_panels()` draws a frame at most FRAME_HZ times a second: the
status line; on every FRAME_HZ / PANEL_HZ-th frame also the sparklines, the eval table and the
log pane, and on every FRAME_HZ / CHART_HZ-th the chart (its keys redraw it at once), each only
if its data changed. Every widget that changes is drawn in the same frame, so the terminal is
written a few times a second, not once per widget timer. Keys that change the run post an intent
message (screens/controller.py); read-only, those keys are not offered at all, nor g without a
checkpoint to sample, nor this machine's CPU and RAM (they are not the run's). While the engine
stops, its keys leave the footer at once.

Keys for the other screens (e extend, c config, g sample, d doctor) import their module on first
use and push `<Name>Screen.for_run(controller)`; the config and extend screens hand back a
`ConfigChange`, which goes to the app as `ApplyConfig`.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import traceback
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from gpttui.analysis.config_edit import ConfigChange
from gpttui.analysis.live import LiveRun
from gpttui.run import layout
from gpttui.screens.confirm import Choice, ConfirmScreen
from gpttui.screens.controller import (
    ApplyConfig,
    DisplayFailed,
    LogLines,
    QuitApp,
    ResumeRun,
    RunController,
    RunUpdated,
    SendCommand,
    StopRun,
)
from gpttui.screens.help import HelpScreen
from gpttui.widgets import fmt
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.header import RunHeader
from gpttui.widgets.log_pane import LogPane
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.spark import SparkPanel
from gpttui.widgets.status import StatusLine
from gpttui.widgets.system import SystemFigures

FRAME_HZ = 2.0   # frames a second at most: the status line (a state change shows at once)
PANEL_HZ = 1.0   # the sparklines, the eval table and the log, on every FRAME_HZ / PANEL_HZ-th frame
CHART_HZ = 0.5   # the chart while only its data moves (the costliest panel to draw)
READY_WAIT_S = 5.0  # keys wait at most this long for a screen being opened to take them

# key -> (module under gpttui.screens, screen class, what it is called in a notification)
OTHER_SCREENS = {
    "extend": ("extend", "ExtendScreen", "Extend iterations"),
    "config": ("config", "ConfigScreen", "The config editor"),
    "sample": ("sample", "SampleScreen", "Sampling"),
    "doctor": ("doctor", "DoctorScreen", "The run doctor"),
}
ENGINE_KEYS = {"pause", "unpause", "save", "evaluate", "stop", "undo"}   # need a running engine
RUN_KEYS = ENGINE_KEYS | {"resume_run"}                                   # control a run: never read-only
RUN_SCREENS = {"config"}                      # screens that change a run (extend is a what-if read-only)
READ_ONLY_HELP = {   # what a key does when the runs are only read (gpttui open), where that differs
    "quit": "quit (nothing runs here to stop)",
    "extend": "what if it trained longer: tokens, time and the forecast at a new end (nothing is applied)",
}


class DashboardScreen(Screen[None]):
    CSS_PATH = "dashboard.tcss"
    # Footer order: what a user needs first fits in 80 columns (v, u and the chart's keys are in
    # ? and the command palette). Every binding has an id: the user's
    # keymap.toml rebinds it (screens/keymap.py); pause and unpause share one (one key toggles).
    # Keys that open a screen are priority bindings: the app pushes the screen as the key comes
    # (not after this screen has seen it), so the keys typed right after go to that screen.
    BINDINGS = [
        Binding("space,p", "pause", "Pause", key_display="space", id="pause",
                tooltip="pause training (the same key resumes)"),
        Binding("space,p", "unpause", "Resume", key_display="space", id="pause", tooltip="resume training"),
        Binding("r", "resume_run", "Resume", id="resume_run",
                tooltip="start the engine again from the last checkpoint"),
        Binding("s", "save", "Save", id="save", tooltip="save a checkpoint now"),
        Binding("x", "stop", "Stop", id="stop", tooltip="save a checkpoint and stop the engine (asks first)"),
        Binding("q", "quit_app", "Quit", id="quit", tooltip="quit (asks whether to stop the run and save)"),
        Binding("question_mark", "help", "Help", id="help", tooltip="this list"),
        Binding("e", "open('extend')", "Extend", id="extend", priority=True, tooltip="train longer: change max_iters"),
        Binding("d", "open('doctor')", "Doctor", id="doctor", priority=True, tooltip="judge the run: trends, forecast, MFU"),
        Binding("g", "open('sample')", "Sample", id="sample", priority=True, tooltip="generate text from a checkpoint"),
        Binding("c", "open('config')", "Config", id="config", priority=True,
                tooltip="edit the config (live, restart or new run)"),
        Binding("v", "evaluate", "Eval", id="eval", show=False, tooltip="evaluate train and val loss now"),
        Binding("u", "undo", "Undo", id="undo", show=False,
                tooltip="undo the last live learning-rate change (until its first eval)"),
        Binding("escape", "back", "Back to all runs", show=False, id="back", tooltip="back to the runs compared"),
        Binding("a", "chart('x')", "X axis", show=False, id="chart_x",
                tooltip="chart x axis: iteration / tokens seen / run time"),
        Binding("l", "chart('log')", "Log y", show=False, id="chart_log", tooltip="chart: log-scale y axis on/off"),
        Binding("left_square_bracket", "chart('less')", "Less smooth", show=False, id="chart_less",
                tooltip="chart: less smoothing (down to off)"),
        Binding("right_square_bracket", "chart('more')", "More smooth", show=False, id="chart_more",
                tooltip="chart: more smoothing"),
        Binding("z", "chart('zoom')", "Zoom", show=False, id="chart_zoom",
                tooltip="chart: whole run / last 5000 / 1000 / 200 iterations"),
    ]

    def __init__(self, controller: RunController, *, closable: bool = False) -> None:
        """`closable`: opened over the compare screen, Esc goes back to it."""
        super().__init__()
        self.controller = controller
        self.closable = closable
        self._live = controller.live      # the LiveRun the panels are bound to
        self._log: LogLines | None = None
        self._log_seen = 0
        self._status_key: tuple | None = None
        self._status_version, self._status_at = -1, 0.0
        self._frame_at = 0.0
        self._frames = 0
        self._panels_version = -1
        self._ready = False  # set in on_mount (Screen.is_mounted is still False there)
        self._kept: dict[str, Screen] = {}  # screens kept installed between uses (the config editor)
        self._checkpoints: dict[Path, bool] = {}   # a read-only run's: any checkpoint to sample from

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            yield LossChart(self._live, id="chart")
            with Vertical(id="side"):
                yield SparkPanel("loss", fmt.loss, id="spark-loss")
                yield SparkPanel("MFU", fmt.percent, id="spark-mfu")
                yield SparkPanel("tokens/s", fmt.count, id="spark-tps")
                yield SparkPanel("lr", fmt.number, id="spark-lr")
                yield SparkPanel("grad norm", fmt.number, id="spark-gn")
                if not self.controller.read_only:   # this machine's figures are not those of a run only read
                    yield SystemFigures(id="system")
        with Horizontal(id="bottom"):
            yield EvalTable(id="evals")
            yield LogPane(id="log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#evals").border_title = "evals"
        self.query_one("#log").border_title = "log" if self.controller.read_only else "engine log"
        self._ready = True
        self.refresh_panels(force=True)

    def on_run_updated(self, message: RunUpdated) -> None:
        try:
            self.refresh_panels(message.force)
        except Exception as e:  # a display bug must not take the run down with the UI
            self.post_message(DisplayFailed(repr(e), traceback.format_exc().splitlines()))

    # ------------------------------------------------------------ panels

    def refresh_panels(self, force: bool = False) -> None:
        """Draw a frame if one is due: at most FRAME_HZ a second (at once when forced, or for a new
        state or pending command); the panels on every FRAME_HZ / PANEL_HZ-th frame. Everything is
        drawn when the controller's LiveRun was replaced (a history loaded, a new run, another run
        opened)."""
        if not self._ready:
            return  # (an update can arrive before the panels exist)
        run = self.controller
        live = run.live
        chart = self.query_one(LossChart)
        if live is not self._live:
            self._live = live
            chart.live = live
            force = True
        now = time.monotonic()
        said = (run.display_state, run.pending)  # a key's effect: shown on the next update
        if said != self._status_key:
            self.refresh_bindings()   # e.g. "stopping…": Pause, Save and Stop go from the footer at once
        elif not force and now - self._frame_at < 1.0 / FRAME_HZ:
            return
        self._frame_at = now
        self._frames += 1
        panels = force or self._frames % round(FRAME_HZ / PANEL_HZ) == 0
        if force or self._frames % round(FRAME_HZ / CHART_HZ) == 0:
            chart.redraw_if_stale()
        if panels:
            self._show_log(run.log)
        if force or said != self._status_key or live.version != self._status_version \
                or now - self._status_at >= 1.0:  # elapsed ticks on
            self._status_key, self._status_version, self._status_at = said, live.version, now
            self.query_one(RunHeader).show(live, run.run_dir, run.header_note, run.config)
            self.query_one(StatusLine).show(live, run.display_state, run.pending)
        if panels and (force or live.version != self._panels_version):
            self._panels_version = live.version
            self.query_one("#spark-loss", SparkPanel).show(_losses(live), live.version)
            self.query_one("#spark-mfu", SparkPanel).show(live.mfu, live.version)
            self.query_one("#spark-tps", SparkPanel).show(live.tokens_per_s, live.version)
            self.query_one("#spark-lr", SparkPanel).show(live.lr, live.version)
            self.query_one("#spark-gn", SparkPanel).show(live.grad_norm, live.version)
            self.query_one(EvalTable).show(live)

    def _show_log(self, log: LogLines) -> None:
        pane = self.query_one(LogPane)
        if log is not self._log:   # another run's log (the viewer opened another run)
            self._log, self._log_seen = log, 0
            pane.clear()
        if log.total != self._log_seen:
            pane.write_lines(log.since(self._log_seen))
            self._log_seen = log.total

    # ------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that can't apply here or now (False), grey out those that apply soon (None)."""
        run = self.controller
        if action == "back":
            return self.closable
        if run.read_only and (action in RUN_KEYS or (action == "open" and parameters[0] in RUN_SCREENS)):
            return False
        paused = run.display_state == "paused"
        # an engine that takes commands: not one stopping (saving its checkpoint, then exiting)
        taking = run.engine_alive and not run.stopping and run.display_state not in layout.FINAL_STATES
        if action == "unpause":
            return paused and taking
        if action == "undo":
            return taking and run.live.undo is not None
        if action in ENGINE_KEYS:
            if taking:
                return not paused if action == "pause" else True
            # an engine on its way: greyed; one going or none (stopped, failed, finished): not offered
            return None if run.display_state in ("loading", "starting") else False
        if action == "resume_run":
            return run.can_resume
        if action == "open" and parameters[0] == "sample":
            return self._can_sample()
        return True

    def _can_sample(self) -> bool:
        """Read-only, sampling needs a checkpoint already there (a log has none; a run that has
        ended writes no more); a live run's first eval writes one."""
        run = self.controller
        if not run.read_only or run.display_state in layout.ACTIVE_STATES:
            return True
        where = run.run_dir
        if where not in self._checkpoints:
            self._checkpoints[where] = where.is_dir() and any(p.is_file() for p in where.glob("*.pt"))
        return self._checkpoints[where]

    def action_pause(self) -> None:
        self.post_message(SendCommand("pause", pending="pausing…"))

    def action_unpause(self) -> None:
        self.post_message(SendCommand("resume", pending="resuming…"))

    def action_undo(self) -> None:
        self.post_message(SendCommand("undo", pending="undoing the last live change…"))

    def action_save(self) -> None:
        self.post_message(SendCommand("save", pending="saving a checkpoint…"))

    def action_evaluate(self) -> None:
        self.post_message(SendCommand("eval", pending="evaluating…"))

    def action_stop(self) -> None:
        now = f"iteration {self.controller.live.iter:,}"
        where = (f"where the run stands when you answer ({now} now: it trains on while this asks)"
                 if self.controller.display_state == "running" else f"at {now}")
        msg = (f"Save a checkpoint {where} and stop the engine. "
               "You can resume later (r, or gpttui launch on the run directory).")

        def answered(stop: bool | None) -> None:
            if stop:
                self.post_message(StopRun())
        self.app.push_screen(ConfirmScreen("Stop the run?", msg, [Choice(True, "Stop and save", "y", "primary"),
                                                                  Choice(False, "Keep training", "n")]), answered)

    def action_quit_app(self) -> None:
        self.post_message(QuitApp())

    def action_resume_run(self) -> None:
        self.post_message(ResumeRun())

    def action_back(self) -> None:
        self.dismiss()

    def action_help(self) -> None:
        """Every key offered here now, under the keys it has now (a user's keymap included)."""
        keys: dict[tuple[str, str], list[str]] = {}
        read_only = self.controller.read_only
        for key, active in self.active_bindings.items():
            b = active.binding
            if active.node is self and b.id in BINDING_IDS and b.description:
                shown = self.app.get_key_display(b.with_key(key))
                what = READ_ONLY_HELP.get(b.id or "") if read_only else None
                keys.setdefault((b.action, what or b.tooltip or b.description), []).append(shown)
        self.app.push_screen(HelpScreen([(" / ".join(names), what) for (_, what), names in keys.items()]))

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

    async def action_open(self, name: str) -> None:
        module, cls, title = OTHER_SCREENS[name]
        try:
            screen_cls = getattr(importlib.import_module(f"gpttui.screens.{module}"), cls)
        except (ImportError, AttributeError):
            self.notify(f"{title} is not available yet.", severity="warning")
            return
        try:
            screen = self._kept.get(name)
            if screen is None or not screen.reopen_for(self.controller):
                screen = screen_cls.for_run(self.controller)
                if hasattr(screen, "reopen_for"):   # costly to build: installed, so a dismiss keeps it
                    self._keep(name, screen)
        except Exception as e:  # another module's bug must not take the dashboard down
            self.notify(f"{title} failed to open: {e}", severity="error")
            return
        self.app.push_screen(screen, self._screen_result)
        ready = getattr(screen, "ready", None)
        if isinstance(ready, asyncio.Event):
            # the app takes no further key until the screen is up with its field focused, so
            # what is typed right after the key lands there, in order
            try:
                await asyncio.wait_for(ready.wait(), READY_WAIT_S)
            except TimeoutError:
                pass

    def _keep(self, name: str, screen: Screen) -> None:
        old = self._kept.pop(name, None)
        if old is not None and old not in self.app.screen_stack:
            self.app.uninstall_screen(old)
            if old.is_running:   # composed (shown before): its widgets go too
                old.remove()
        self.app.install_screen(screen, f"kept-{name}-{id(screen)}")
        self._kept[name] = screen

    def _screen_result(self, result: object) -> None:
        if isinstance(result, ConfigChange):
            self.post_message(ApplyConfig(result.changes, result.action))


def _losses(live: LiveRun) -> list[float]:
    return [p[3] for p in list(live.series.raw)[-512:]]


BINDING_IDS = {b.id for b in DashboardScreen.BINDINGS if isinstance(b, Binding) and b.id}   # what keymap.toml may rebind
