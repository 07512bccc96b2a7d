"""A learning-rate schedule chart: the schedule before a change and after it (plotext).

Drawn at the widget's own size, again after each show(); the lr is sampled at about two points per
column (plotext's braille resolution), plus the points either side of "now" so a jump in
the rate shows as a jump.
"""

from __future__ import annotations

from rich.text import Text

from gpttui.run.config import TrainConfig
from gpttui.run.schedule import lr_at
from gpttui.widgets import ticks
from gpttui.widgets.plot import PlotWidget, figure

# plotext's "simple" theme gives its signals these terminal colours, in order
BEFORE_COLOR = "blue"
AFTER_COLOR = "green"


def sample_iters(end: int, n: int, extra: tuple[int, ...] = ()) -> list[int]:
    """About `n` iteration numbers spread over [0, end], with `extra` ones included."""
    step = max(1, end // max(1, n))
    its = set(range(0, end + 1, step)) | {end} | {e for e in extra if 0 <= e <= end}
    return sorted(its)


class LRChart(PlotWidget):
    """The lr schedule of `before` up to its max_iters and of `after` up to its own, with a
    vertical line at the current iteration."""

    DEFAULT_CSS = "LRChart { height: 10; min-height: 6; }"

    def __init__(self, before: TrainConfig, now: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.before = before
        self.after: TrainConfig | None = None
        self.now = now
        self._shown = 0  # bumps with every show(): the drawing's key

    def show(self, before: TrainConfig, after: TrainConfig | None, now: int) -> None:
        self.before, self.after, self.now = before, after, now
        self._shown += 1
        self.refresh()

    def key(self) -> tuple:
        return (self._shown,)

    def plot(self, width: int, height: int) -> str | Text:
        if width < 20 or height < 4:
            return Text("(too small for the chart)")
        end = max(self.before.max_iters, self.after.max_iters if self.after else 0, self.now, 1)
        extra = (self.now, self.now + 1, self.before.warmup_iters)
        fig = figure(width, height, theme="simple")
        peak = 0.0
        for cfg, label in ((self.before, "before"), (self.after, "after")):
            if cfg is None:
                continue
            xs = sample_iters(cfg.max_iters, 2 * width, extra)
            ys = [lr_at(cfg, x) for x in xs]
            peak = max(peak, *ys)
            sig = fig.signal(xs, ys)
            sig.lines()
            fig.draw(sig)
        fig.line(self.now, orientation="vertical")
        xt = ticks.count_ticks(0, end, max(2, min(8, (width - 10) // 11)))
        fig.ruler(axis=0).ticks(xt.values, xt.labels)
        fig.ruler(axis=0).lim(0, end)
        yt = ticks.decimal_ticks(0, peak, max(2, min(4, height // 3)))
        fig.ruler(axis=1).ticks(yt.values, yt.labels)
        return fig.build().string()
