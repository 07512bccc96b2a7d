"""The eval table: step, train loss, val loss, gap, and a note (best so far, checkpoint saved).

A note longer than the room left for it is said shorter ("best, saved"), then in symbols
("★ ✓", with the legend under the table), and only then cut at a word.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from gpttui.analysis.live import LiveRun
from gpttui.widgets import fmt

MAX_ROWS = 1000  # the most recent evals; the doctor and metrics.jsonl have them all
COLUMNS = ("step", "train", "val", "gap", "note")
SHORT_NOTES = (("best so far", "best"), ("checkpoint saved", "saved"))
SYMBOL_NOTES = (("best so far", "★"), ("checkpoint saved", "✓"), (", ", " "))
LEGEND = "★ best so far  ✓ checkpoint saved"


class EvalTable(DataTable):
    can_focus = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._live: LiveRun | None = None   # the run shown, and its evals_version when last shown
        self._shown = -1
        self._rows: list[tuple] = []
        self._note_width = 0   # the room the notes were fitted to

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
        width = self.note_room()
        for i, row in enumerate(rows):
            if i < len(shown):
                if row != shown[i]:
                    for key, cell in zip(COLUMNS, _cells(row, width)):
                        self.update_cell(str(row[0]), key, cell, update_width=True)
                    shown[i] = row
            else:
                self.add_row(*_cells(row, width), key=str(row[0]))
                shown.append(row)
        if self.note_room() != width:   # the other columns grew: fit the notes again
            self._fit_notes()
        if self.row_count:
            self.scroll_end(animate=False)

    def note_room(self) -> int:
        """Cells left for the note column beside the others (at least its header's)."""
        others = sum(c.get_render_width(self) for k, c in self.columns.items() if k.value != "note")
        return max(len("note"), self.scrollable_content_region.width - others - 2 * self.cell_padding)

    def on_resize(self) -> None:
        self._fit_notes()

    def _fit_notes(self) -> None:
        width = self.note_room()
        if width != self._note_width and self.columns:
            self._note_width = width
            self.border_subtitle = LEGEND if width < len("best, saved") else ""
            for row in self._rows:
                self.update_cell(str(row[0]), "note", _note(row[4], width), update_width=True)


def _note(note: str, width: int) -> Text:
    return Text(fit_note(note, width), style="dim")


def fit_note(note: str, width: int) -> str:
    """The note as it fits `width`: in full, in short words, in symbols, or cut at a word."""
    short = symbols = note
    for long, word in SHORT_NOTES:
        short = short.replace(long, word)
    for long, symbol in SYMBOL_NOTES:
        symbols = symbols.replace(long, symbol)
    return next((form for form in (note, short, symbols) if len(form) <= width), fmt.elide(short, width))


def _cells(row: tuple, note_width: int) -> list[Text]:
    it, train, val, gap, note = row
    style = "bold green" if "best" in note else ""
    return [Text(f"{it:,}", justify="right"), Text(fmt.loss(train), justify="right"),
            Text(fmt.loss(val), justify="right", style=style),
            Text("—" if gap is None else f"{gap:+.3f}", justify="right"), _note(note, note_width)]
