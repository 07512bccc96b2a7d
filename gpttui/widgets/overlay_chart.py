"""Several runs' val loss on one plotext chart, each in its own colour, by iteration or tokens.

Evals are few (one per eval_interval), so every point is drawn; the drawing is kept and made
again only when a run's evals, the axis or the size change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive

from gpttui.run.history import RunHistory
from gpttui.widgets.plot import PlotWidget, figure, marker, value_axes

# 8-bit colours, one per run, in order (distinct on dark and light themes)
PALETTE = (9, 12, 10, 11, 13, 14, 208, 141, 44, 203)
AXES = ("iter", "tokens")


def colour(i: int) -> int:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Curve:
    name: str
    history: RunHistory
    colour: int


def val_points(h: RunHistory, axis: str) -> tuple[list[float], list[float]] | None:
    """(x, val) of a run's evals; None by tokens when its tokens per iteration are unknown.

    Iteration 0 (the untrained model, ~ln(vocab)) is left out so the curves fill the chart.
    """
    its, vals = h.val_curve()
    keep = [k for k, i in enumerate(its) if i > 0]
    its, vals = [its[k] for k in keep], [vals[k] for k in keep]
    if axis == "tokens":
        tpi = h.tokens_per_iter
        if not tpi:
            return None
        return [float(i) * tpi for i in its], vals
    return [float(i) for i in its], vals


class OverlayChart(PlotWidget):
    x_axis: reactive[str] = reactive("iter")
    log_y: reactive[bool] = reactive(False)

    def __init__(self, curves: list[Curve] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.curves: list[Curve] = curves or []
        self.skipped: list[str] = []   # runs not drawn on this axis (tokens per iteration unknown)

    def set_curves(self, curves: list[Curve]) -> None:
        self.curves = curves
        self.refresh()

    def cycle_x_axis(self) -> None:
        self.x_axis = AXES[(AXES.index(self.x_axis) + 1) % len(AXES)]

    def watch_x_axis(self) -> None:
        self._retitle()

    def watch_log_y(self) -> None:
        self._retitle()

    def on_mount(self) -> None:
        self._retitle()

    def _retitle(self) -> None:
        self.border_title = "val loss"
        self.border_subtitle = f"x: {self.x_axis}{'  log-y' if self.log_y else ''}"
        self.refresh()

    def key(self) -> tuple:
        return (self.x_axis, self.log_y,
                tuple((id(c.history), len(c.history.evals), c.history.last_iter) for c in self.curves))

    def plot(self, width: int, height: int) -> str | Text:
        if width < 20 or height < 5:
            return Text("")
        series, self.skipped = [], []
        for c in self.curves:
            pts = val_points(c.history, self.x_axis)
            if pts is None:
                self.skipped.append(c.name)
            elif pts[0]:
                series.append((c, pts))
        if not series:
            why = "no evals yet" if not self.skipped else "tokens per iteration unknown for every run"
            return Text(why, style="dim", justify="center")
        log = self.log_y and min(min(p[1]) for _, p in series) > 0
        to_y = (lambda ys: [math.log10(y) for y in ys]) if log else list
        fig = figure(width, height)
        for c, (xs, ys) in series:
            fig.draw(fig.signal(xs, to_y(ys), marker=marker("braille", c.colour)).lines())
            fig.draw(fig.signal(xs, to_y(ys), marker=marker("●", c.colour)))
        x_lo, x_hi = min(min(p[0]) for _, p in series), max(max(p[0]) for _, p in series)
        y_lo, y_hi = min(min(p[1]) for _, p in series), max(max(p[1]) for _, p in series)
        value_axes(fig, self.x_axis, (x_lo, x_hi), (y_lo, y_hi), log, (width, height), "val loss")
        return fig.build().string()
