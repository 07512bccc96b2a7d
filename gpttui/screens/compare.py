"""`gpttui open` with several runs: their val loss on one chart, a table of runs, and the
highlighted run's evals. Enter opens that run in the dashboard (an `OpenRun` to the app), d its
doctor. It reads the runs through `ComparedRuns`, which viewer.py's controller implements."""

from __future__ import annotations

from typing import Protocol

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gpttui.analysis.opened_run import OpenedRun
from gpttui.run.units import human_count
from gpttui.screens.controller import OpenRun, QuitApp, RunController, RunUpdated
from gpttui.screens.doctor import DoctorScreen
from gpttui.widgets.eval_table import EvalTable
from gpttui.widgets.overlay_chart import Curve, OverlayChart

# what a comparison needs first comes first: the columns that don't fit the table's width are
# left out whole (the run's dashboard and doctor have them), never cut mid-header
RUN_COLUMNS = ("", "run", "best val", "last val", "iter", "tokens seen", "kind", "state")
CELL_PAD = 2     # DataTable's cell padding, one each side
SEPARATORS = "_-./ "


class ComparedRuns(RunController, Protocol):
    """The runs opened read-only, and the overlay's x axis to start with ("iter" or "tokens")."""

    runs: list[OpenedRun]
    axis: str


class RunsTable(DataTable):
    """The runs compared. Which columns it shows depends on its own width, which settles a layout
    or two after the screen's (a Resize does not bubble): it says when its width changes."""

    class Refit(Message):
        """The table's width changed: its columns are to be chosen again."""

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Refit())


class CompareScreen(Screen[None]):
    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("enter", "open_run", "Dashboard", priority=True,   # (before the table's own Enter: in the footer)
                tooltip="the highlighted run in the dashboard (Esc back)"),
        Binding("d", "doctor", "Doctor", tooltip="judge the highlighted run"),
        Binding("a", "axis", "X axis", tooltip="val loss by iteration / tokens seen"),
        Binding("l", "log_y", "Log y", tooltip="log-scale y axis on/off"),
        Binding("q", "quit_app", "Quit"),
    ]

    def __init__(self, controller: ComparedRuns) -> None:
        super().__init__()
        self.controller = controller

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="compare-title")
        yield OverlayChart(id="overlay")
        with Horizontal(id="compare-bottom"):
            yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield EvalTable(id="compare-evals")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs").border_title = "runs"
        self.query_one("#compare-evals").border_title = "evals"
        self.query_one(OverlayChart).x_axis = self.controller.axis

    def on_run_updated(self, message: RunUpdated) -> None:
        if message.force:
            self.show_runs()

    def on_screen_resume(self) -> None:
        self.show_runs()   # back from a run's dashboard: what it followed meanwhile

    def on_runs_table_refit(self) -> None:
        self.call_after_refresh(self._fill_table)   # once the table has its new width

    def show_runs(self) -> None:
        """(Re)fill the chart and the table from the controller's runs."""
        runs = self.controller.runs
        if not runs:
            return   # still loading
        chart = self.query_one(OverlayChart)
        chart.set_curves([Curve(r.name, r.history, r.colour) for r in runs if not r.error])
        self._fill_table()
        self._title()
        self._show_evals()

    def _fill_table(self) -> None:
        """The runs' rows, with as many of RUN_COLUMNS as the table's width holds whole."""
        runs = self.controller.runs
        if not runs:
            return
        names = short_names([r.name for r in runs])
        rows = []
        for r, name in zip(runs, names):
            h = r.history
            last_val = next((e.val_loss for e in reversed(h.evals) if e.val_loss is not None), None)
            rows.append((Text("■", style=f"color({r.colour})"), name,
                         f"{h.best_val:.4f}" if h.best_val is not None else "—",
                         f"{last_val:.4f}" if last_val is not None else "—",
                         f"{h.last_iter:,}" if h.last_iter is not None else "—",
                         human_count(h.tokens_seen) if h.tokens_seen else "—",
                         "log" if h.kind == "nanogpt-log" else "run",
                         "error" if r.error else "live" if r.followed else h.state or "—"))
        table = self.query_one("#runs", DataTable)
        widths = column_widths(RUN_COLUMNS, rows)
        n = columns_that_fit(widths, table.scrollable_content_region.width or 10**6)
        cursor = table.cursor_row
        table.clear(columns=True)
        # widths measured here: DataTable measures its cells when idle, and a row drawn before that
        # kept the header's width ("…12" for a run's name) in its render cache
        for name, width in zip(RUN_COLUMNS[:n], widths):
            table.add_column(name, key=name or "colour", width=width)
        for i, row in enumerate(rows):
            table.add_row(*row[:n], key=str(i))
        table.move_cursor(row=min(max(cursor, 0), len(runs) - 1))

    def _title(self) -> None:
        chart = self.query_one(OverlayChart)
        t = Text(f" {len(self.controller.runs)} runs, read-only ", style="bold reverse")
        for r in self.controller.runs:
            t.append("  ")
            t.append("■ ", style=f"color({r.colour})")
            t.append(r.name)
        if chart.skipped:
            t.append(f"   not on the tokens axis (tokens/iter unknown): {', '.join(chart.skipped)}", style="dim")
        self.query_one("#compare-title", Static).update(t)

    def _show_evals(self) -> None:
        runs = self.controller.runs
        row = self.query_one("#runs", DataTable).cursor_row
        if runs and 0 <= row < len(runs):
            evals = self.query_one(EvalTable)
            evals.show(runs[row].live)
            evals.border_title = f"evals: {runs[row].name}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs":
            self._show_evals()

    def _highlighted(self) -> int | None:
        row = self.query_one("#runs", DataTable).cursor_row
        runs = self.controller.runs
        return row if 0 <= row < len(runs) and not runs[row].error else None

    def action_open_run(self) -> None:
        i = self._highlighted()
        if i is not None:
            self.post_message(OpenRun(i))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_doctor(self) -> None:
        i = self._highlighted()
        if i is not None:
            run = self.controller.runs[i]
            self.app.push_screen(DoctorScreen(run.history, run.name))

    def action_axis(self) -> None:
        self.query_one(OverlayChart).cycle_x_axis()
        self.call_after_refresh(self._title)

    def action_log_y(self) -> None:
        chart = self.query_one(OverlayChart)
        chart.log_y = not chart.log_y

    def action_quit_app(self) -> None:
        self.post_message(QuitApp())


def short_names(names: list[str]) -> list[str]:
    """The runs' names without the start they all share (up to a separator): 'train_log_fineweb_124m.txt'
    and 'train_log_fineweb_40m.txt' read '…124m.txt' and '…40m.txt'; the title line has them whole."""
    if len(names) < 2:
        return names
    common = min(names, key=len)
    for n in names:
        while not n.startswith(common):
            common = common[:-1]
    cut = max((common.rfind(c) for c in SEPARATORS), default=-1) + 1
    if cut < 4:
        return names
    return [f"…{n[cut:]}" if n[cut:] else n for n in names]


def column_widths(headers: tuple[str, ...], rows: list[tuple]) -> list[int]:
    """Each column's width in cells: its header's or its widest cell's."""
    return [max([len(header), *((Text(c) if isinstance(c, str) else c).cell_len for c in (row[i] for row in rows))])
            for i, header in enumerate(headers)]


def columns_that_fit(widths: list[int], room: int) -> int:
    """How many of the first columns of these widths fit `room` cells whole (at least the first two)."""
    used = 0
    for i, width in enumerate(widths):
        used += width + CELL_PAD
        if used > room:
            return max(i, 2)
    return len(widths)
