"""`gpttui open`: runs and nanoGPT logs, read-only, in the dashboard.

`ViewerApp` is the dashboard app with the engine taken away: no command is ever sent and
nothing is started. A run directory whose metrics.jsonl still grows (its engine is running)
is followed live by tailing that file. One source opens straight in the dashboard; several
open on the compare screen (every run's val loss on one chart, each in its own colour), and
Enter shows the highlighted run in the dashboard (Esc comes back).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import events
from textual.binding import Binding
from textual.css.query import NoMatches

from gpttui.analysis.live import LiveRun
from gpttui.app import GpttuiApp, LaunchPlan
from gpttui.run import config as C
from gpttui.run import engine_state, layout
from gpttui.run.history import MetricsTail, RunHistory, RunLogError, load_run
from gpttui.widgets.overlay_chart import colour

POLL_S = 0.5   # how often a live run's metrics.jsonl is read for new lines


@dataclass
class OpenedRun:
    path: Path
    name: str
    colour: int
    live: LiveRun = field(default_factory=LiveRun)
    tail: MetricsTail | None = None       # set while the run's engine is alive
    error: str = ""

    @property
    def history(self) -> RunHistory:
        return self.live.history


def log_times(h: RunHistory) -> dict[int, float]:
    """Estimated seconds since the start at each logged iteration of a log without timestamps.

    A logged iteration's time stands for the iterations since the previous line; an eval
    iteration's extra (its pause) is counted once, not for every iteration it stands for.
    """
    steps = [s for s in h.steps if s.dt_ms is not None]
    evals = {e.iter for e in h.evals}
    normal = sorted(s.dt_ms for s in steps if s.iter not in evals) or [0.0]
    typical = normal[len(normal) // 2] / 1000
    out, t, prev = {}, 0.0, None
    for s in steps:
        gap = 1 if prev is None or s.iter <= prev else s.iter - prev
        t += s.dt_ms / 1000 + (gap - 1) * (typical if s.iter in evals else s.dt_ms / 1000)
        out[s.iter] = t
        prev = s.iter
    return out


def history_events(h: RunHistory) -> list[dict[str, Any]]:
    """A loaded history (e.g. a nanoGPT log) as events in iteration order, to feed a LiveRun.

    Steps without wall time get the estimate of `log_times`, so run time and ETA show."""
    times = log_times(h) if all(s.t is None for s in h.steps) else {}
    out: list[tuple[int, int, dict[str, Any]]] = []
    out += [(e.iter, 0, {"type": "eval", "iter": e.iter, "t": e.t, "train_loss": e.train_loss,
                         "val_loss": e.val_loss}) for e in h.evals]
    out += [(c.iter, 1, {"type": "checkpoint", "iter": c.iter, "t": c.t, "path": c.path,
                         "val_loss": c.val_loss}) for c in h.checkpoints]
    out += [(s.iter, 2, {"type": "step", "iter": s.iter, "t": times.get(s.iter, s.t), "loss": s.loss, "lr": s.lr,
                         "dt_ms": s.dt_ms, "tokens_per_s": s.tokens_per_s, "mfu": s.mfu,
                         "grad_norm": s.grad_norm, "tokens": s.tokens}) for s in h.steps]
    out.sort(key=lambda x: x[:2])
    return [e for *_, e in out]


def open_source(path: Path, index: int) -> OpenedRun:
    """Read one run directory, metrics.jsonl or nanoGPT log (off the UI thread)."""
    run = OpenedRun(path, path.name, colour(index))
    metrics = path / layout.METRICS if path.is_dir() else path
    if path.is_dir() or path.suffix == ".jsonl":
        run_dir = path if path.is_dir() else path.parent
        if path.is_dir() and (path / layout.CONFIG).exists():
            run.live.history.config.update(C.read_config_file(path / layout.CONFIG))
            run.live.history.config_complete = True
        run.tail = MetricsTail(metrics)
        run.live.add_all(run.tail.poll())
        run.live.history.skipped_lines = run.tail.skipped
        run.live.history.source = str(metrics)
        alive = engine_state.status(run_dir).kind == "alive"
        if not alive:
            run.tail = None
            if run.live.state in layout.ACTIVE_STATES:
                run.live.history.state = "stopped"   # the engine that wrote this is gone
        return run
    loaded = load_run(path)
    # the LiveRun rebuilds the records from events, on a history that keeps what a log says
    # beyond them (config, parameter count, tokens per iteration, stray lines, sessions)
    seed = copy.copy(loaded)
    seed.steps, seed.evals, seed.checkpoints = [], [], []
    run.live.history = seed
    run.live.add_all(history_events(loaded))
    return run


class ViewerApp(GpttuiApp):
    """The dashboard without an engine: read-only views of runs and logs."""

    CSS_PATH = [*GpttuiApp.CSS_PATH, "screens/compare.tcss"]
    BINDINGS = [*GpttuiApp.BINDINGS, Binding("escape", "back", "Back to all runs", show=False)]

    def __init__(self, sources: list[Path], axis: str = "iter") -> None:
        first = sources[0]
        super().__init__(LaunchPlan(first, C.LoadedConfig(C.TrainConfig()), start=False, note="read-only"))
        self.sources = sources
        self.axis = axis
        self.runs: list[OpenedRun] = []
        self.selected = 0

    # ------------------------------------------------------------ read-only: no engine, ever

    @property
    def engine_alive(self) -> bool:
        return False

    @property
    def can_resume(self) -> bool:
        return False

    @property
    def display_state(self) -> str:
        if self.loading:
            return "loading"
        run = self.runs[self.selected] if self.runs else None
        if run is not None and run.tail is not None:
            return self.live.state or "running"
        if run is not None and run.history.kind == "nanogpt-log":
            return "nanoGPT log"
        return self.live.state or "no events"

    def send(self, cmd: str, **values: Any) -> bool:
        self.notify("Read-only view (gpttui open): use gpttui launch on a run directory to control it.",
                    severity="warning")
        return False

    def apply_changes(self, changes: dict[str, Any], action: str = "live") -> None:
        self.send("set")

    def resume_run(self) -> None:
        self.send("resume")

    def restart_engine(self, changes: dict[str, Any]) -> None:
        self.send("set")

    def start_new_run(self, cfg: C.TrainConfig) -> None:
        self.send("set")

    # ------------------------------------------------------------ start-up

    def get_default_screen(self):
        if len(self.sources) == 1:
            return super().get_default_screen()
        from gpttui.screens.compare import CompareScreen

        return CompareScreen()

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()   # not the base app's start-up: no metrics.jsonl reload, no engine
        self.dashboard = self.screen if len(self.sources) == 1 else None
        self.set_interval(POLL_S, self._poll)
        self.run_worker(self._load_all, thread=True, name="load-runs")

    def _load_all(self) -> None:
        runs = []
        for i, path in enumerate(self.sources):
            try:
                runs.append(open_source(path, i))
            except (RunLogError, C.ConfigError, OSError) as e:
                run = OpenedRun(path, path.name, colour(i), error=str(e))
                runs.append(run)
        self.call_from_thread(self._runs_loaded, runs)

    def _runs_loaded(self, runs: list[OpenedRun]) -> None:
        self.runs = runs
        self.loading = False
        for run in runs:
            if run.error:
                self.notify(run.error, severity="error", timeout=8)
        self.select(0)
        if self.dashboard is not None:
            self._describe(self.runs[0])
        else:
            self.screen.show_runs()

    def select(self, index: int) -> None:
        """Make run `index` the one the dashboard (and the doctor) show."""
        self.selected = index
        run = self.runs[index]
        self.live = run.live
        self.run_dir = run.path
        self.header_note = "read-only, live" if run.tail is not None else "read-only"
        if self.dashboard is not None:
            self.dashboard.rebind()

    def _describe(self, run: OpenedRun) -> None:
        h = run.history
        what = "nanoGPT log" if h.kind == "nanogpt-log" else "run"
        lines = [f"── {what} {run.path}: {len(h.steps):,} steps, {len(h.evals):,} evals, "
                 f"{len(h.checkpoints):,} checkpoints"]
        if h.skipped_lines:
            lines.append(f"── {h.skipped_lines} stray line(s) skipped")
        if run.tail is not None:
            lines.append("── its engine is running: following metrics.jsonl")
        self.dashboard.write_log(lines)

    def open_dashboard(self, index: int) -> None:
        """From the compare screen: the dashboard on one run (Esc comes back)."""
        from gpttui.screens.dashboard import DashboardScreen

        self.dashboard = None
        self.select(index)                 # the dashboard composes with the selected run
        self.dashboard = DashboardScreen()
        self.push_screen(self.dashboard, wait_for_dismiss=False)
        self.call_after_refresh(self._describe, self.runs[index])

    def action_back(self) -> None:
        if len(self.sources) > 1 and self.dashboard is not None and self.screen is self.dashboard:
            self.pop_screen()
            self.dashboard = None
            self.screen.show_runs()

    # ------------------------------------------------------------ live runs

    def _tick(self) -> None:   # the base app's engine timer is not started here
        pass

    def _poll(self) -> None:
        changed = False
        for run in self.runs:
            if run.tail is not None:
                events = run.tail.poll()
                if events:
                    run.live.add_all(events)
                    changed = True
                    if run.live.state not in layout.ACTIVE_STATES:
                        run.tail = None if run.live.state in ("finished", "stopped", "failed") else run.tail
        try:
            if self.dashboard is not None and self.screen is self.dashboard and self.dashboard.is_mounted:
                self.dashboard.refresh_panels(force=changed)
            elif changed and hasattr(self.screen, "show_runs"):
                self.screen.show_runs()
        except NoMatches:   # the app is closing: its widgets are already gone
            pass
