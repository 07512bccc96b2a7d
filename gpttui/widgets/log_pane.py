"""The engine's stderr (its human log), bounded, wrapped at word boundaries to the pane's width.

A line too long for the pane goes on under itself, indented, rather than off the edge (where
"tok/s 5," was all that showed of a step line at 120 columns); a resize wraps it again.
The pane is anchored (Textual's `anchor()`): each layout keeps its end in view, so a batch that
first overflows it shows its last line even when no line follows (a scroll to the end asked for
at the write can run before the pane may scroll, and is dropped); scrolled up, it stays put until
scrolled back to the end.
"""

from __future__ import annotations

import textwrap
from collections import deque
from typing import Iterable

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

MAX_LINES = 1000
INDENT = "  "   # before the continuation of a wrapped line


def wrap(line: str, width: int) -> list[str]:
    """`line` as rows of at most `width` cells, broken at spaces where it can be."""
    if len(line) <= width or width < 2 * len(INDENT) + 1:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent=INDENT, drop_whitespace=True,
                         break_on_hyphens=False) or [""]


class LogPane(ScrollView):
    can_focus = False
    DEFAULT_CSS = "LogPane { overflow-x: hidden; }"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._lines: deque[str] = deque(maxlen=MAX_LINES)
        self._rows: list[str] = []      # the lines wrapped to _rows_width
        self._rows_width = 0

    @property
    def lines(self) -> list[str]:
        """The lines kept, as written (unwrapped)."""
        return list(self._lines)

    def on_mount(self) -> None:
        self.anchor()

    def clear(self) -> None:
        """Empty the pane; the lines written next show from their end again (even if scrolled up)."""
        self._lines.clear()
        self._rows = []
        self._update_size()
        self.anchor()

    def write_lines(self, lines: Iterable[str]) -> None:
        new = [part for line in lines for part in line.splitlines() or [""]]
        dropped = len(self._lines) + len(new) > MAX_LINES
        self._lines.extend(new)
        width = self._width()
        if dropped or width != self._rows_width:
            self._rewrap(width)
        else:
            self._rows.extend(row for line in new for row in wrap(line, width))
        self._update_size()

    def on_resize(self) -> None:
        self._rewrap(self._width())
        self._update_size()

    def _width(self) -> int:
        """The pane's width less its scrollbar's (there as soon as the log outgrows the pane)."""
        return max(1, self.size.width - self.styles.scrollbar_size_vertical)

    def _rewrap(self, width: int) -> None:
        self._rows_width = width
        self._rows = [row for line in self._lines for row in wrap(line, width)]

    def _update_size(self) -> None:
        self.virtual_size = Size(self._rows_width, len(self._rows))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        style = self.rich_style
        width = self.scrollable_content_region.width
        text = self._rows[index] if index < len(self._rows) else ""
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)
