"""A small panel: a caption with the latest value, and a sparkline of the recent ones."""

from __future__ import annotations

from typing import Callable, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from gpttui.widgets import fmt


class SparkPanel(Vertical):
    def __init__(self, title: str, formatter: Callable[[float | None], str] = fmt.number,
                 **kw) -> None:
        super().__init__(**kw)
        self.title = title
        self.formatter = formatter
        self._shown: tuple[int, float | None] | None = None
        self._caption = Label(self.title, classes="caption")
        self._spark = Sparkline([], summary_function=max)

    def compose(self) -> ComposeResult:
        yield self._caption
        yield self._spark

    def show(self, values: Sequence[float], version: int) -> None:
        """Assign new data only when it changed (Sparkline redraws on every assignment)."""
        last = values[-1] if values else None
        if self._shown == (version, last) or not self._spark.is_mounted:
            return
        self._shown = (version, last)
        self._caption.update(f"{self.title} [b]{self.formatter(last)}[/]", layout=False)
        width = max(1, self.size.width)
        self._spark.data = list(values)[-2 * width:]
