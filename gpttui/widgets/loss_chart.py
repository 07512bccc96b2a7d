"""The big chart: step loss (raw min/max envelope and a debiased EMA) and val points, by plotext.

Points are cut down to the chart's width before plotting (plotext's cost grows with the points):
raw loss as each column's min and max (spikes stay), the EMA as each column's mean, so a
redraw costs the same whatever the run's length. The drawing is kept and made again only when
the settings or the size change (at once) or the data did (when its host calls
`redraw_if_stale`, in the frame it draws its other panels in).

While the run has evals and max_iters ahead but the fit gives no forecast, a dim note under the
plot says why, in the words the extend screen and the doctor use (forecast.no_forecast), so an
empty stretch right of the last eval reads as "not yet", not as a missing feature. Where the
forecast at max_iters is above the best val so far, a yellow note says so (forecast.rise_note).
"""

from __future__ import annotations

import re
import textwrap
import threading

import numpy as np
from rich.text import Text
from textual.reactive import reactive

from gpttui.analysis.forecast import Projection, no_forecast, projection
from gpttui.analysis.live import LiveRun
from gpttui.analysis.series import X_AXES, column_envelope, ema
from gpttui.run.history import RunHistory
from gpttui.widgets import fmt
from gpttui.widgets.plot import PlotWidget, figure, marker, plotext, value_axes

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
ZOOM_STEPS = (0, 5000, 1000, 200)   # last N iterations; 0 = the whole run
RAW, SMOOTH, VAL = 12, 11, 9         # 8-bit colours: blue, yellow, red
DIM = "\x1b[2m", "\x1b[0m"             # the no-forecast note, as plotext's ANSI lines are styled
WARN = "\x1b[33m", "\x1b[0m"            # ... and "val forecast to rise"
ASIDE = re.compile(r" \([^)]*\)")         # "(the initial transient)": left out of a note short of room


def preload() -> None:
    """Import plotext on a thread while the first frame is drawn."""
    threading.Thread(target=plotext, daemon=True, name="import-plotext").start()


class LossChart(PlotWidget):
    x_axis: reactive[str] = reactive("iter")
    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.9)
    zoom: reactive[int] = reactive(0)

    def __init__(self, live: LiveRun, **kw) -> None:
        super().__init__(**kw)
        self._live = live
        self._projected: tuple[tuple, Projection | None, str] = ((), None, "")

    @property
    def live(self) -> LiveRun:
        return self._live

    @live.setter
    def live(self, live: LiveRun) -> None:
        """Another run (a history loaded, a new run): drawn at once, not at the next tick."""
        if live is not self._live:
            self._live = live
            self.refresh()

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

    def redraw_if_stale(self) -> None:
        """Draw again if the data moved since the last drawing."""
        if self.stale():
            self.refresh()

    def _retitle(self) -> None:
        smooth = f"EMA {self.smoothing:g}" if self.smoothing else "EMA off"
        zoom = f"last {self.zoom:,} iters" if self.zoom else "all"
        self.border_title = (f"loss  [#5f87ff]raw[/] [#ffff5f]{smooth}[/] [#ff5f5f]● val[/]")
        self.border_subtitle = f"x: {self.x_axis}  {'log-y  ' if self.log_y else ''}{zoom}"
        self.refresh()

    # ---------------------------------------------------------------- drawing

    def key(self) -> tuple:
        live = self._live
        return (id(live), live.series.version, live.evals_version, self.x_axis, self.log_y, self.smoothing, self.zoom)

    def plot(self, width: int, height: int) -> str | Text:
        win = self.live.series.window(self.zoom or None)
        if width < 20 or height < 5:
            return Text("")
        if len(win) == 0:
            return Text("waiting for the first step…", style="dim", justify="center")
        note = self._note_rows(width, height)
        height -= len(note)
        axis = self.x_axis
        x = win.x(axis).astype(np.float64)
        columns = max(10, width - 10)  # the plot area, without the y tick labels
        env = column_envelope(x, win.lo, win.hi, win.mean, win.count, columns)
        log = self.log_y and float(env.lo.min()) > 0  # (a loss at or below 0 has no logarithm)
        to_y = np.log10 if log else np.asarray
        fig = figure(width, height)
        xs = np.repeat(env.x, 2).tolist()
        ys = to_y(np.column_stack([env.lo, env.hi]).ravel()).tolist()
        fig.draw(fig.signal(xs, ys, marker=marker("braille", RAW)).lines())
        if self.smoothing > 0:
            smooth = ema(win.mean, win.count, self.smoothing)
            senv = column_envelope(x, smooth, smooth, smooth, win.count, columns)
            fig.draw(fig.signal(senv.x.tolist(), to_y(senv.mean).tolist(),
                                marker=marker("braille", SMOOTH)).lines())
        vx, vy = self._val_points(win, axis)
        if vx:
            fig.draw(fig.signal(vx, to_y(np.asarray(vy)).tolist(), marker=marker("●", VAL)))
        px, py = self._draw_projection(fig, axis, to_y)
        x_lo, x_hi = min([float(env.x[0]), *vx]), max([float(env.x[-1]), *vx, *px])
        y_lo, y_hi = min([float(env.lo.min()), *vy, *py]), max([float(env.hi.max()), *vy, *py])
        value_axes(fig, axis, (x_lo, x_hi), (y_lo, y_hi), log, (width, height), "loss")
        proj, said = self.forecast()
        on, off = WARN if proj is not None and said and said == proj.rises else DIM
        return "\n".join([fig.build().string().rstrip("\n"), *(f"{on}{row}{off}" for row in note)])

    def forecast(self) -> tuple[Projection | None, str]:
        """The val-loss forecast to max_iters, made again only when an eval arrives; without one,
        why not in no_forecast's words, or "" where none is due (no evals yet, max_iters unknown
        or reached); cut short where its band gets too wide, and then why; else its rise_note, if any."""
        h = self._live.history
        key = (id(self._live), self._live.evals_version, h.max_iters)
        if self._projected[0] != key:
            proj = projection(h)
            self._projected = (key, proj, (proj.cut_short or proj.rises) if proj is not None else _why_no_forecast(h))
        return self._projected[1], self._projected[2]

    def _note_rows(self, width: int, height: int) -> list[str]:
        """The forecast's note wrapped at words under the plot: two rows at most (one on a short
        chart); where it needs more, without its asides in brackets, then the last row elided at
        a word."""
        why = self.forecast()[1]
        if not why:
            return []
        keep = 2 if height >= 10 else 1
        rows = textwrap.wrap(why, width - 1)
        if len(rows) > keep:
            rows = textwrap.wrap(ASIDE.sub("", why), width - 1)
        if len(rows) > keep:
            rows = [*rows[:keep - 1], fmt.elide(" ".join(rows[keep - 1:]), width - 1)]
        return [" " + row for row in rows]

    def _draw_projection(self, fig, axis: str, to_y) -> tuple[list[float], list[float]]:
        """The val-loss forecast to max_iters (central line) and its 90% band (dots); not on the
        run-time axis or when zoomed. Returns its x and y."""
        h = self._live.history
        proj = self.forecast()[0]
        scale = 1.0 if axis == "iter" else float(h.tokens_per_iter or 0)
        if proj is None or axis == "time" or self.zoom or not scale:
            return [], []
        px = (proj.iters * scale).tolist()
        fig.draw(fig.signal(px, to_y(proj.central).tolist(), marker=marker("braille", VAL)).lines())
        for edge in (proj.low, proj.high):
            fig.draw(fig.signal(px, to_y(edge).tolist(), marker=marker("·", VAL)))
        return px, [*proj.low.tolist(), *proj.high.tolist()]

    def _val_points(self, win, axis: str) -> tuple[list[float], list[float]]:
        first = int(win.iters[0]) - (int(win.count[0]) - 1 if len(win) else 0)
        its, vals = self.live.history.val_curve()
        pts = [(i, v) for i, v in zip(its, vals) if i >= first]
        if not pts:
            return [], []
        its = np.array([p[0] for p in pts], dtype=np.float64)
        if axis == "iter":
            xs = its
        else:
            xs = np.interp(its, win.iters.astype(np.float64), win.x(axis))
        return xs.tolist(), [p[1] for p in pts]


def _why_no_forecast(h: RunHistory) -> str:
    """Why a run with evals and iterations still to go has no forecast; "" when none is due."""
    its, vals = h.val_curve()
    if not its or not h.max_iters or h.max_iters <= its[-1]:
        return ""
    trains = {e.iter: e.train_loss for e in h.evals}
    cfg = h.train_config()
    return no_forecast(its, vals, [trains.get(i) for i in its], cfg.eval_interval if cfg else None, h.max_iters)
