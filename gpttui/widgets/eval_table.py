"""The eval table: step, train loss, val loss, gap, and a note (best so far, checkpoint saved).

A note longer than the room left for it is said shorter ("best, saved"), then in symbols
("★ ✓", with the legend under the table, and no "note" header where it would be cut), and only
then cut at a word. Where even the symbols can't fit (a 10K-iteration run at 80 columns), the gap
column goes (it is val less train, both beside it) and the notes take its room.
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
WORDS_ROOM = "best, saved"   # the longest note in short words
SYMBOLS_ROOM = "★ ✓"        # the longest note in symbols
DROPPABLE = "gap"            # the column that gives way to the notes


class EvalTable(DataTable):
    can_focus = False

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._live: LiveRun | None = None   # the run shown, and its evals_version when last shown
        self._shown = -1
        self._rows: list[tuple] = []   # the rows shown, as eval_rows() gave them
        self._widths: dict[str, int] = {}   # the columns shown and their widths, the notes' room last

    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.zebra_stripes = True
        self._write([])
        # the newest eval in view however late DataTable measures its rows or the layout settles:
        # anchored, and scrolled to the end after each write and resize (either alone left the
        # compare screen's table at its top now and then); a user's scroll up releases the anchor
        self.anchor()

    def show(self, live: LiveRun) -> None:
        """Append new evals; rows from the first one that changed (a checkpoint came after its
        eval) are written again. Another LiveRun than last time (a new run, another run
        compared) is shown from the start."""
        if live is self._live and live.evals_version == self._shown:
            return
        if live is not self._live:  # its rows share keys (the iterations) with the rows shown: all anew
            self._rows, self._widths = [], {}
        self._live, self._shown = live, live.evals_version
        self._write(live.eval_rows()[-MAX_ROWS:])

    def on_resize(self) -> None:
        if self.widths(self._rows) != self._widths:
            self._write(self._rows)
        self.scroll_end(animate=False)

    def widths(self, rows: list[tuple]) -> dict[str, int]:
        """The columns shown and each one's width as `rows` make it (measured here: the table's
        own measuring comes later and redraws its header at times, at others not), the room left
        for the notes last, a scrollbar's room kept; without the gap column where the notes'
        symbols would not fit beside it."""
        fixed = {name: max([len(name), *(_cells(row, 0)[k].cell_len for row in rows)])
                 for k, name in enumerate(COLUMNS[:-1])}
        cell = 2 * self.cell_padding   # each column's padding
        room = self.size.width - self.styles.scrollbar_size_vertical - sum(fixed.values()) - cell * len(COLUMNS)
        if room < len(SYMBOLS_ROOM):
            room += fixed.pop(DROPPABLE) + cell
        return {**fixed, COLUMNS[-1]: max(len(SYMBOLS_ROOM), room)}

    def _write(self, rows: list[tuple]) -> None:
        """Make the table show `rows`: rows already shown as they are stay, the rest are written
        (added, never edited in place, so a row reads the same however its events arrived); new
        widths write every column and row again."""
        widths = self.widths(rows)
        keep = 0
        if widths == self._widths:
            while keep < min(len(rows), len(self._rows)) and rows[keep] == self._rows[keep]:
                keep += 1
            for row in self._rows[keep:]:
                self.remove_row(str(row[0]))
        else:
            self._widths = widths
            self.clear(columns=True)
            for name, width in widths.items():   # notes in symbols under no header: the legend says
                self.add_column(name if len(name) <= width else "", key=name, width=width)
            self.border_subtitle = LEGEND if widths[COLUMNS[-1]] < len(WORDS_ROOM) else ""
        for row in rows[keep:]:
            cells = _cells(row, widths[COLUMNS[-1]])
            self.add_row(*(cell for name, cell in zip(COLUMNS, cells) if name in widths), key=str(row[0]))
        self._rows = list(rows)
        self.scroll_end(animate=False)


def _note(note: str, width: int) -> Text:
    return Text(fit_note(note, width), style="dim")


def fit_note(note: str, width: int) -> str:
    """The note as it fits `width`: in full, in short words, in symbols, or cut at a word."""
    short = symbols = note
    for long, word in SHORT_NOTES:
        short = short.replace(long, word)
    for long, symbol in SYMBOL_NOTES:
        symbols = symbols.replace(long, symbol)
    # where the longest short note can't fit, every row is in symbols (the legend under the table
    # says them), not "best" in one row and "★ ✓" in the next
    forms = (note, short, symbols) if width >= len(WORDS_ROOM) else (symbols,)
    return next((form for form in forms if len(form) <= width), fmt.elide(short, width))


def _cells(row: tuple, note_width: int) -> list[Text]:
    it, train, val, gap, note = row
    style = "bold green" if "best" in note else ""
    return [Text(f"{it:,}", justify="right"), Text(fmt.loss(train), justify="right"),
            Text(fmt.loss(val), justify="right", style=style),
            Text("—" if gap is None else f"{gap:+.3f}", justify="right"), _note(note, note_width)]
