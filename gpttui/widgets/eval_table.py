"""The eval table: step, train loss, val loss, gap, and a note (best so far, checkpoint saved)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from gpttui.analysis.live import LiveRun
from gpttui.widgets import fmt

MAX_ROWS = 1000  # the most recent evals; the doctor and metrics.jsonl have them all
COLUMNS = ("step", "train", "val", "gap", "note")


class EvalTable(DataTable):
    can_focus = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._live: LiveRun | None = None   # the run shown, and its evals_version when last shown
        self._shown = -1
        self._rows: list[tuple] = []

    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.zebra_stripes = True
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, live: LiveRun) -> None:
        """Append new evals; rewrite only rows whose note changed (a checkpoint came after its eval).
        Another LiveRun than last time (a new run, another run compared) is shown from the start."""
        if (live is self._live and live.evals_version == self._shown) or not self.columns:
            return
        other_run = live is not self._live
        self._live, self._shown = live, live.evals_version
        rows = live.eval_rows()[-MAX_ROWS:]
        shown = self._rows
        if other_run or len(rows) < len(shown) or any(r[0] != s[0] for r, s in zip(rows, shown)):
            self.clear()  # a resume from an earlier checkpoint, or the window moved: start over
            shown = self._rows = []
        for i, row in enumerate(rows):
            if i < len(shown):
                if row != shown[i]:
                    for key, cell in zip(COLUMNS, _cells(row)):
                        self.update_cell(str(row[0]), key, cell)
                    shown[i] = row
            else:
                self.add_row(*_cells(row), key=str(row[0]))
                shown.append(row)
        if self.row_count:
            self.scroll_end(animate=False)


def _cells(row: tuple) -> list[Text]:
    it, train, val, gap, note = row
    style = "bold green" if "best" in note else ""
    return [Text(f"{it:,}", justify="right"), Text(fmt.loss(train), justify="right"),
            Text(fmt.loss(val), justify="right", style=style),
            Text("—" if gap is None else f"{gap:+.3f}", justify="right"), Text(note, style="dim")]
