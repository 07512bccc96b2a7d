"""A small panel: a caption with the latest value and the range shown, over a sparkline of the
recent values.

A sparkline scaled to its own min and max turns an lr going from 1.00e-3 to 9.99e-4 into a
full-height drop. Here bars rise from zero (every figure shown is a size: loss, MFU, tokens/s,
lr, grad norm), so a flat figure reads flat and a halving reads as one; the caption states the
min and max drawn, for the detail the bars leave out. The panel draws what it is given at once
(only if it changed): its host decides how often, in the frame it draws everything else in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from rich.segment import Segment
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Label

from gpttui.widgets import fmt

BARS = " ▁▂▃▄▅▆▇█"


@dataclass
class Scale:
    floor: float
    top: float

    def level(self, v: float, steps: int) -> int:
        """How many of `steps` eighths of the height a value fills (at least one above the floor)."""
        if self.top <= self.floor:
            return steps
        frac = (v - self.floor) / (self.top - self.floor)
        return max(1 if v > self.floor else 0, min(steps, round(frac * steps)))


def scale_for(values: Sequence[float]) -> Scale:
    """From zero (or the lowest value, if negative) to the highest."""
    return Scale(min(0.0, min(values)), max(values))


def columns(values: Sequence[float], width: int) -> list[float]:
    """The values cut into `width` consecutive buckets (fewer when there are fewer values), each
    bucket's mean; the last column is the latest value itself, the one the caption names, so the
    range stated holds it (an lr decaying is below its last bucket's mean)."""
    n = len(values)
    if n <= width:
        return list(values)
    out = []
    for c in range(width - 1):
        part = values[c * n // width:(c + 1) * n // width]
        out.append(sum(part) / len(part))
    return [*out, values[-1]]


class SparkBars(Widget):
    """Bars, one column per bucket of values, rows stacked; drawn from `values` and `scale`."""

    DEFAULT_CSS = "SparkBars { height: 1fr; min-height: 1; color: $accent; }"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.values: list[float] = []
        self.scale = Scale(0.0, 0.0)
        self._rows: tuple[tuple[int, int], list[str]] = ((0, 0), [])   # (the size drawn at, the rows)

    def show(self, values: list[float], scale: Scale) -> None:
        self.values, self.scale = values, scale
        self._rows = ((0, 0), [])
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        if self._rows[0] != (width, height):
            self._rows = ((width, height), self._draw(width, height))
        style = self.rich_style
        return Strip([Segment(self._rows[1][y], style)]).adjust_cell_length(width, style)

    def _draw(self, width: int, height: int) -> list[str]:
        """The bars as text rows, top row first."""
        if not self.values:
            return [" " * width] * (height - 1) + ["▁" * width]
        steps = 8 * height
        levels = [self.scale.level(v, steps) for v in self.values[-width:]]
        return ["".join(BARS[max(0, min(8, level - 8 * (height - 1 - row)))] for level in levels)
                for row in range(height)]


class SparkPanel(Vertical):
    def __init__(self, title: str, formatter: Callable[[float | None], str] = fmt.number,
                 **kw) -> None:
        super().__init__(**kw)
        self.title = title
        self.formatter = formatter
        self._values: list[float] = []
        self._given: tuple[int, float | None] | None = None   # what show() was last given
        self._drawn: tuple[int, float | None, int] | None = None
        self._caption = Label(self.title, classes="caption")
        self._bars = SparkBars()

    def compose(self) -> ComposeResult:
        yield self._caption
        yield self._bars

    def on_resize(self) -> None:
        self._draw()

    def show(self, values: Sequence[float], version: int) -> None:
        """Draw the latest values, if they changed."""
        last = values[-1] if values else None
        if self._given != (version, last):
            self._given = (version, last)
            self._values = list(values)
            self._draw()

    def _draw(self) -> None:
        width = self.content_size.width
        if self._given is None or self._drawn == (*self._given, width) or width < 1:
            return
        self._drawn = (*self._given, width)
        shown = columns(self._values, width)
        self._caption.update(self.caption(shown, width), layout=False)
        self._bars.show(shown, scale_for(shown) if shown else Scale(0.0, 0.0))

    def caption(self, shown: list[float], width: int) -> Text:
        """'title value' and, right-aligned, the range of the columns drawn ('lo–hi') when it fits."""
        t = Text(f"{self.title} ")
        t.append(self.formatter(self._values[-1] if self._values else None), style="bold")
        if shown:   # the range of the bars drawn (bucket means): one step's spike is not the figure's range
            span = f"{self.formatter(min(shown))}–{self.formatter(max(shown))}"
            gap = width - t.cell_len - len(span)
            if gap >= 2:
                t.append(" " * gap)
                t.append(span, style="dim")
        return t
