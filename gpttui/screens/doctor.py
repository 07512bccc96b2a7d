"""The run doctor panel (key d): gpttui.analysis.doctor's findings for the run on screen.

The report is computed off the UI thread on a snapshot of the history, and again every
REFRESH_S seconds while the run is live.
"""

from __future__ import annotations

import copy

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gpttui.analysis import doctor
from gpttui.run import layout
from gpttui.run.history import RunHistory
from gpttui.screens.controller import RunController

REFRESH_S = 5.0
LEVEL_STYLE = {"ok": "green", "note": "yellow", "warn": "bold red"}
LEVEL_MARK = {"ok": "✓", "note": "•", "warn": "!"}


def snapshot(h: RunHistory) -> RunHistory:
    """A copy the worker can read while the UI thread keeps appending to the original."""
    s = copy.copy(h)
    for name in ("steps", "evals", "checkpoints", "errors", "sessions"):
        setattr(s, name, list(getattr(h, name)))
    s.sessions = [copy.copy(x) for x in h.sessions]
    s.config = dict(h.config)
    return s


def report_table(r: doctor.Report) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for f in r.findings:
        body = Text("\n".join(f.lines) + "\n")
        body.append(f"{LEVEL_MARK[f.level]} {f.verdict}", style=LEVEL_STYLE[f.level])
        table.add_row(f.title, body)
        table.add_row("", "")
    return table


class DoctorScreen(ModalScreen[None]):
    CSS_PATH = "doctor.tcss"
    BINDINGS = [Binding("escape,q,d", "dismiss", "Close"), Binding("r", "refresh", "Refresh")]

    def __init__(self, history: RunHistory, title: str = "") -> None:
        super().__init__()
        self.history = history
        self._title = title
        self.report: doctor.Report | None = None

    @classmethod
    def for_run(cls, run: RunController) -> DoctorScreen:
        return cls(run.history, run.run_dir.name)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="doctor"):
            yield Static(id="doctor-title")
            yield Static("examining the run…", id="doctor-body")

    def on_mount(self) -> None:
        name = self._title or self.history.source
        self.query_one("#doctor-title", Static).update(
            Text.assemble(("run doctor  ", "bold"), (name, "bold cyan"), ("   (Esc to close, r to refresh)", "dim")))
        self.action_refresh()
        if self.history.state in layout.ACTIVE_STATES:
            self.set_interval(REFRESH_S, self.action_refresh)

    def action_refresh(self) -> None:
        self._diagnose(snapshot(self.history))

    @work(thread=True, exclusive=True, group="doctor")
    def _diagnose(self, h: RunHistory) -> None:
        try:
            r = doctor.diagnose(h)
        except Exception as e:   # show it; a bug in the analysis must not take the dashboard down
            self.app.call_from_thread(self._show_error, repr(e))
            return
        self.app.call_from_thread(self._show, r)

    def _show(self, r: doctor.Report) -> None:
        self.report = r
        self.query_one("#doctor-body", Static).update(report_table(r))

    def _show_error(self, message: str) -> None:
        self.query_one("#doctor-body", Static).update(Text(f"the doctor failed: {message}", style="red"))
