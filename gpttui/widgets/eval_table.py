"""The eval table: step, train loss, val loss, gap, and a note (best so far, checkpoint saved)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from gpttui.liverun import LiveRun
from gpttui.widgets import fmt


class EvalTable(DataTable):
    can_focus = False

    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.zebra_stripes = True
        self.add_column("step", key="step")
        self.add_column("train", key="train")
        self.add_column("val", key="val")
        self.add_column("gap", key="gap")
        self.add_column("note", key="note")
        self._shown = -1

    def show(self, live: LiveRun) -> None:
        if live.evals_version == self._shown:
            return
        self._shown = live.evals_version
        self.clear()
        for it, train, val, gap, note in live.eval_rows():
            style = "bold green" if "best" in note else ""
            self.add_row(Text(f"{it:,}", justify="right"), Text(fmt.loss(train), justify="right"),
                         Text(fmt.loss(val), justify="right", style=style),
                         Text("—" if gap is None else f"{gap:+.3f}", justify="right"),
                         Text(note, style="dim"), key=str(it))
        if self.row_count:
            self.scroll_end(animate=False)
