"""`gpttui open`: the app's controller for runs and nanoGPT logs read, never controlled.

`ReadOnlyRuns` gives GpttuiApp the runs to show and nothing to drive: it starts no engine and
sends no command, its `read_only` makes the dashboard offer no key that would, and it takes only
the intents that fit (open a run, quit). A run directory whose metrics.jsonl still grows (its
engine is running) is followed live by tailing that file. One source opens straight in the
dashboard; several open on the compare screen (every run's val loss on one chart, each in its
own colour), and Enter shows the highlighted run in the dashboard (Esc comes back).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from textual.app import App
from textual.screen import Screen

from gpttui.analysis.live import LiveRun
from gpttui.analysis.opened_run import OpenedRun, open_source
from gpttui.run import config as C
from gpttui.run.history import RunLogError
from gpttui.screens.compare import CompareScreen
from gpttui.screens.controller import Intent, LiveRunReads, LogLines, OpenRun, QuitApp
from gpttui.screens.dashboard import DashboardScreen
from gpttui.widgets.overlay_chart import colour

TICK_S = 0.1   # the app's timer: what was loaded shows at once
POLL_S = 0.5   # how often a live run's metrics.jsonl is read for new lines


class ReadOnlyRuns(LiveRunReads):
    """The controller of `gpttui open`: the opened runs, one of them selected for the dashboard."""

    tick_s = TICK_S
    read_only = True
    engine_alive = False
    stopping = False   # nothing here stops a run
    can_resume = False
    pending = ""
    app: App[Any]   # set by start()

    def __init__(self, sources: list[Path], axis: str = "iter", configs: dict[Path, Path] | None = None) -> None:
        self.sources = sources
        self.axis = axis
        self.configs = configs or {}   # a log's config (`gpttui open LOG --config FILE`)
        self.runs: list[OpenedRun] = []
        self.selected = 0
        self.loading = True
        self.live = LiveRun()
        self.log = LogLines()
        self.run_dir = sources[0]
        self.loaded = C.LoadedConfig(C.TrainConfig())
        self._logs: list[LogLines] = []     # each run's log pane: what was read
        self._changed = False
        self._polled_at = 0.0

    # ------------------------------------------------------------ what screens read

    @property
    def header_note(self) -> str:
        run = self.runs[self.selected] if self.runs else None
        return "read-only, live" if run is not None and run.followed else "read-only"

    @property
    def display_state(self) -> str:
        if self.loading:
            return "loading"
        run = self.runs[self.selected] if self.runs else None
        if run is not None and run.tail is not None:
            return self.live.state or "running"
        if run is not None and run.history.kind == "nanogpt-log":
            return "nanoGPT log, ended in an error" if run.history.fatal_error else "nanoGPT log"
        return self.live.state or "no events"

    # ------------------------------------------------------------ start-up

    def first_screen(self) -> Screen[None]:
        return DashboardScreen(self) if len(self.sources) == 1 else CompareScreen(self)

    def start(self, app: App[Any]) -> None:
        self.app = app
        app.run_worker(self._load_all, thread=True, name="load-runs")

    def _load_all(self) -> None:
        runs = []
        for i, (path, name) in enumerate(zip(self.sources, distinct_names(self.sources))):
            try:
                run = open_source(path, colour(i), self.configs.get(path))
                run.name = name
            except (RunLogError, C.ConfigError, OSError) as e:
                run = OpenedRun(path, name, colour(i), error=str(e))
            runs.append(run)
        self.app.call_from_thread(self._runs_loaded, runs)

    def _runs_loaded(self, runs: list[OpenedRun]) -> None:
        self.runs = runs
        self.loading = False
        self._logs = []
        for run in runs:
            if run.error:
                self.app.notify(run.error, severity="error", timeout=8)
            log = LogLines()
            log.write(run.describe())
            self._logs.append(log)
        self.select(0)
        self._changed = True

    def select(self, index: int) -> None:
        """Make run `index` the one the dashboard (and the doctor) show."""
        self.selected = index
        run = self.runs[index]
        self.live = run.live
        self.log = self._logs[index]
        self.run_dir = run.path

    # ------------------------------------------------------------ the timer and intents

    def tick(self) -> bool:
        now = time.monotonic()
        if now - self._polled_at >= POLL_S:
            self._polled_at = now
            followed = [run.poll() for run in self.runs]   # every live run, not only until one changed
            for run, log in zip(self.runs, self._logs):
                log.write(run.take_added())
            self._changed = any(followed) or self._changed
        changed, self._changed = self._changed, False
        return changed

    def handle(self, intent: Intent) -> None:
        """Opening a run and quitting; the keys that would control a run are not offered here."""
        match intent:
            case OpenRun(index=index):
                self.select(index)
                self.app.push_screen(DashboardScreen(self, closable=True))
            case QuitApp():
                self.app.exit(0)

    def shutdown(self) -> None:
        """Nothing was started, so nothing is left to stop."""


def distinct_names(paths: list[Path]) -> list[str]:
    """The runs' names as the header and the table show them: the file or directory name, with as
    many of the folders above it as it takes to tell apart runs of the same name (two
    `gpttui-demo` runs: `a/gpttui-demo` and `b/gpttui-demo`); the same path twice is numbered."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    depth = [1] * len(paths)
    names = [p.name for p in paths]
    while True:
        clash = {n for n in names if names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clash and depth[i] < len(parts[i]) - 1]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
            names[i] = "/".join(parts[i][-depth[i]:])
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n} #{seen[n]}")
    return out
