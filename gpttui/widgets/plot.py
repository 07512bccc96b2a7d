"""What the plotext charts share: plotext, imported once and off the first frame; a figure made
ready at a size, axes with round ticks; and a widget that shows plotext's ANSI output as cached
strips.

Handing Textual a Rich Text of a chart costs as much again as drawing it (every colour run is
restyled on the way to the screen); plotext writes only resets and 8-bit foregrounds, which
become segments directly here, once per drawing, not once per frame.
"""

from __future__ import annotations

import re
import threading
from types import ModuleType
from typing import Any

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from gpttui.widgets import ticks

_plotext: ModuleType | None = None
_plotext_lock = threading.Lock()
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_SGR_STYLES: dict[str, Style] = {}
X_LABELS = {"iter": "iteration", "tokens": "tokens seen", "time": "run time"}


def plotext() -> ModuleType:
    """plotext, imported on first use (it takes a noticeable moment, kept off the first frame)."""
    global _plotext
    with _plotext_lock:
        if _plotext is None:
            import plotext as plt

            plt.add_theme("gpttui", text=8)
            plt.terminal.limit(False, False)  # the widget, not the terminal plotext sees, sets the size
            _plotext = plt
    return _plotext


def figure(width: int, height: int, theme: str = "gpttui") -> Any:
    """plotext's one global figure, cleared and sized: draw on it and build it at once."""
    fig = plotext().figure
    fig.clear()
    fig.theme(theme)
    fig.plot_size(width, height)
    fig.legend(False)
    return fig


def marker(symbol: str, colour: int) -> Any:
    """A plotext marker in an 8-bit colour."""
    plt = plotext()
    return plt.marker(symbol, plt.pixel(foreground=colour))


def value_axes(fig: Any, axis: str, x: tuple[float, float], y: tuple[float, float], log: bool,
               size: tuple[int, int], y_name: str) -> None:
    """Round ticks and names on a value-by-`axis` chart's axes (`y` in values, not logarithms)."""
    width, height = size
    xt = ticks.axis_ticks(axis, *x, max(2, min(8, (width - 10) // 11)))
    yt = (ticks.log_ticks if log else ticks.decimal_ticks)(*y, max(2, min(6, height // 3)))
    # the x range is the data's, not the ticks' (plotext ends the axis at its last tick otherwise,
    # cutting off the run's latest steps)
    fig.ruler(axis="x").lim(*x)
    fig.ruler(axis="x").ticks(xt.values, xt.labels)
    fig.ruler(axis="y").ticks((np.log10 if log else np.asarray)(np.asarray(yt.values)).tolist(), yt.labels)
    fig.label(X_LABELS[axis], axis="x")
    fig.label(f"{y_name} (log scale)" if log else y_name, axis="y")


def _sgr_style(code: str) -> Style:
    style = _SGR_STYLES.get(code)
    if style is None:
        decoded = Text.from_ansi(f"\x1b[{code}mx")
        found = decoded.spans[0].style if decoded.spans else Style()
        style = _SGR_STYLES[code] = found if isinstance(found, Style) else Style.parse(found)
    return style


def ansi_strips(ansi: str, width: int, base: Style) -> list[Strip]:
    """Lines of SGR-coloured text as strips of exactly `width` cells on the `base` style."""
    strips = []
    for line in ansi.split("\n"):
        segments: list[Segment] = []
        style, pos = base, 0
        for m in _SGR.finditer(line):
            if m.start() > pos:
                segments.append(Segment(line[pos:m.start()], style))
            code = m.group(1)
            style = base if code in ("", "0") else style + _sgr_style(code)
            pos = m.end()
        if pos < len(line):
            segments.append(Segment(line[pos:], style))
        strips.append(Strip(segments).adjust_cell_length(width, base))
    return strips


class PlotWidget(Widget):
    """A chart drawn by `plot(width, height)` (ANSI text, or a Text saying why there is none),
    held as strips and drawn again only when the size, the theme or `key()` change."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._drawn_key: tuple | None = None
        self._strips: list[Strip] = []
        self.builds = 0  # how many times plotext ran (tests and the bench read it)

    def key(self) -> tuple:
        """Everything the drawing depends on besides its size."""
        raise NotImplementedError

    def plot(self, width: int, height: int) -> str | Text:
        raise NotImplementedError

    def stale(self) -> bool:
        """Whether what is drawn no longer matches `key()` (a refresh would draw it again)."""
        return self._drawn_key is None or self._drawn_key[3:] != self.key()

    def build(self, width: int, height: int) -> Text:
        """The drawing at a size, as Rich Text (what a test or a screenshot reads)."""
        drawn = self.plot(width, height)
        return drawn if isinstance(drawn, Text) else Text.from_ansi(drawn, no_wrap=True)

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        base = self.rich_style
        key = (width, height, base, *self.key())
        if key != self._drawn_key:
            self._drawn_key = key
            self._strips = self._draw(width, height, base)
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, base)

    def _draw(self, width: int, height: int, base: Style) -> list[Strip]:
        drawn = self.plot(width, height)
        if isinstance(drawn, str):
            self.builds += 1
            return ansi_strips(drawn.rstrip("\n"), width, base)
        pad = max(0, (width - drawn.cell_len) // 2)
        line = [Segment(" " * pad, base)] + [Segment(seg.text, base + seg.style if seg.style else base)
                                             for seg in drawn.render(self.app.console) if seg.text != "\n"]
        blank = Strip.blank(width, base)
        return [blank] * (height // 2) + [Strip(line).adjust_cell_length(width, base)]
