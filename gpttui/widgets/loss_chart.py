"""The big chart: step loss (raw min/max envelope and a debiased EMA) and val points, by plotext.

Points are cut down to the chart's width before plotting (plotext costs ~15 µs a point):
raw loss as each column's min and max (spikes stay), the EMA as each column's mean, so a
redraw costs a few milliseconds whatever the run's length. The rendering is cached and
rebuilt only when the data, the settings or the size change.
"""

from __future__ import annotations

import threading
from types import ModuleType

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpttui.analysis.live import LiveRun
from gpttui.analysis.series import X_AXES, column_envelope, ema
from gpttui.widgets import ticks

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
ZOOM_STEPS = (0, 5000, 1000, 200)   # last N iterations; 0 = the whole run
RAW, SMOOTH, VAL = 12, 11, 9         # 8-bit colours: blue, yellow, red

_plotext: ModuleType | None = None
_plotext_lock = threading.Lock()


def plotext() -> ModuleType:
    """plotext, imported on first use (it costs ~0.2 s, kept off the first frame)."""
    global _plotext
    with _plotext_lock:
        if _plotext is None:
            import plotext as plt

            plt.add_theme("gpttui", text=8)
            plt.terminal.limit(False, False)  # the widget, not the terminal plotext sees, sets the size
            _plotext = plt
    return _plotext


def preload() -> None:
    """Import plotext on a thread while the first frame is drawn."""
    threading.Thread(target=plotext, daemon=True, name="import-plotext").start()


def _marker(symbol: str, colour: int):
    plt = plotext()
    return plt.marker(symbol, plt.pixel(foreground=colour))


X_LABELS = {"iter": "iteration", "tokens": "tokens seen", "time": "run time"}


class LossChart(Widget):
    x_axis: reactive[str] = reactive("iter")
    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.9)
    zoom: reactive[int] = reactive(0)

    def __init__(self, live: LiveRun, **kw) -> None:
        super().__init__(**kw)
        self.live = live
        self._key: tuple | None = None
        self._text: Text = Text("")
        self.builds = 0  # how many times plotext ran (tests and the bench read it)

    # ---------------------------------------------------------------- controls

    def cycle_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    def cycle_zoom(self) -> None:
        self.zoom = ZOOM_STEPS[(ZOOM_STEPS.index(self.zoom) + 1) % len(ZOOM_STEPS)] \
            if self.zoom in ZOOM_STEPS else 0

    def step_smoothing(self, direction: int) -> None:
        steps = SMOOTHING_STEPS
        i = min(range(len(steps)), key=lambda k: abs(steps[k] - self.smoothing))
        self.smoothing = steps[max(0, min(len(steps) - 1, i + direction))]

    def watch_x_axis(self) -> None:
        self._retitle()

    def watch_log_y(self) -> None:
        self._retitle()

    def watch_smoothing(self) -> None:
        self._retitle()

    def watch_zoom(self) -> None:
        self._retitle()

    def on_mount(self) -> None:
        self._retitle()

    def _retitle(self) -> None:
        smooth = f"EMA {self.smoothing:g}" if self.smoothing else "EMA off"
        zoom = f"last {self.zoom:,} iters" if self.zoom else "all"
        self.border_title = (f"loss  [#5f87ff]raw[/] [#ffff5f]{smooth}[/] [#ff5f5f]● val[/]")
        self.border_subtitle = f"x: {self.x_axis}  {'log-y  ' if self.log_y else ''}{zoom}"
        self.refresh()

    # ---------------------------------------------------------------- drawing

    def render(self) -> Text:
        w, h = self.content_size
        key = (w, h, self.live.series.version, self.live.evals_version,
               self.x_axis, self.log_y, self.smoothing, self.zoom)
        if key != self._key:
            self._key = key
            self._text = self.build(w, h)
            self.builds += 1
        return self._text

    def build(self, width: int, height: int) -> Text:
        win = self.live.series.window(self.zoom or None)
        if width < 20 or height < 5:
            return Text("")
        if len(win) == 0:
            return Text("waiting for the first step…", style="dim", justify="center")
        axis = self.x_axis
        x = win.x(axis).astype(np.float64)
        columns = max(10, width - 10)  # the plot area, without the y tick labels
        env = column_envelope(x, win.lo, win.hi, win.mean, win.count, columns)
        log = self.log_y and float(env.lo.min()) > 0  # (a loss at or below 0 has no logarithm)
        to_y = np.log10 if log else np.asarray
        fig = plotext().figure
        fig.clear()
        fig.theme("gpttui")
        fig.plot_size(width, height)
        fig.legend(False)
        xs = np.repeat(env.x, 2).tolist()
        ys = to_y(np.column_stack([env.lo, env.hi]).ravel()).tolist()
        fig.draw(fig.signal(xs, ys, marker=_marker("braille", RAW)).lines())
        if self.smoothing > 0:
            smooth = ema(win.mean, win.count, self.smoothing)
            senv = column_envelope(x, smooth, smooth, smooth, win.count, columns)
            fig.draw(fig.signal(senv.x.tolist(), to_y(senv.mean).tolist(),
                                marker=_marker("braille", SMOOTH)).lines())
        vx, vy = self._val_points(win, axis)
        if vx:
            fig.draw(fig.signal(vx, to_y(np.asarray(vy)).tolist(), marker=_marker("●", VAL)))
        x_lo, x_hi = min([float(env.x[0]), *vx]), max([float(env.x[-1]), *vx])
        y_lo, y_hi = min([float(env.lo.min()), *vy]), max([float(env.hi.max()), *vy])
        xt = ticks.axis_ticks(axis, x_lo, x_hi, max(2, min(8, columns // 11)))
        yt = (ticks.log_ticks if log else ticks.decimal_ticks)(y_lo, y_hi, max(2, min(6, height // 3)))
        fig.ruler(axis="x").ticks(xt.values, xt.labels)
        fig.ruler(axis="y").ticks(to_y(np.asarray(yt.values)).tolist(), yt.labels)
        fig.label(X_LABELS[axis], axis="x")
        fig.label("loss (log scale)" if log else "loss", axis="y")
        return Text.from_ansi(fig.build().string(), no_wrap=True)

    def _val_points(self, win, axis: str) -> tuple[list[float], list[float]]:
        first = int(win.iters[0]) - (int(win.count[0]) - 1 if len(win) else 0)
        pts = [(e.iter, e.val_loss) for e in self.live.history.evals
               if e.val_loss is not None and e.iter >= first]
        if not pts:
            return [], []
        its = np.array([p[0] for p in pts], dtype=np.float64)
        if axis == "iter":
            xs = its
        else:
            xs = np.interp(its, win.iters.astype(np.float64), win.x(axis))
        return xs.tolist(), [p[1] for p in pts]
