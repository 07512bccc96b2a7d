"""A run's charts as a picture (.png, .svg, .pdf): the four panels a nanoGPT user draws by hand
(train and val loss, learning rate, time per iteration, MFU), several runs overlaid.

matplotlib is an optional extra (`pip install 'gpttui[plots]'`), imported only here and only
when a picture is asked for, with the Agg backend (no display needed). The file is written
atomically like every export.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from gpttui.analysis.series import ema
from gpttui.fs import atomic
from gpttui.run.history import RunHistory
from gpttui.run.schedule import ScheduleConfig, lr_array, wsd_decay_start

SUFFIXES = (".png", ".svg", ".pdf")
PANELS = ("loss", "learning rate", "time per iteration (ms)", "MFU (%)")
DEFAULT_SMOOTHING = 0.6   # per logged point, as TensorBoard's slider
INSTALL_HINT = "pip install 'gpttui[plots]'"
SCHEDULE_POINTS = 2000   # the config's lr schedule drawn through this many iterations


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed; one line saying how to get it."""


def run_label(h: RunHistory) -> str:
    """A short name for a run: the run directory for metrics.jsonl, else the file name."""
    p = Path(h.source)
    return p.parent.name if p.name == "metrics.jsonl" and p.parent.name else p.name


def _series(h: RunHistory, attr: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    pts = [(s.iter, getattr(s, attr)) for s in h.steps
           if getattr(s, attr) is not None and math.isfinite(getattr(s, attr))]
    return np.array([p[0] for p in pts], float), np.array([p[1] * scale for p in pts], float)


def _schedule_iters(cfg: ScheduleConfig, last: int) -> np.ndarray:
    """Where to draw the config's lr schedule up to `last`: a few thousand iterations, its corners
    among them (warm-up's end, the decay's start and end), not one per iteration."""
    corners = np.array([cfg.warmup_iters, cfg.lr_decay_iters, math.ceil(wsd_decay_start(cfg)), cfg.max_iters])
    corners = corners[(corners > 0) & (corners <= last)]
    return np.unique(np.concatenate([np.linspace(0, last, SCHEDULE_POINTS).round(), corners - 1, corners]))


def write_chart_image(histories: list[RunHistory], path: str | Path, smoothing: float = DEFAULT_SMOOTHING,
                      dpi: int = 120) -> None:
    """Draw the four panels for every run (one colour each) into `path`; its suffix picks the format."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if "." + fmt not in SUFFIXES:
        raise ValueError(f"{path}: a chart picture is .png, .svg or .pdf")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartUnavailable(f"drawing {Path(path).name} needs matplotlib: {INSTALL_HINT} "
                               f"(or give --chart a .txt or .html file for the terminal chart)") from None
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    try:
        loss_ax, lr_ax, dt_ax, mfu_ax = axes.flat
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        several = len(histories) > 1
        for n, h in enumerate(histories):
            colour, name = colours[n % len(colours)], run_label(h)
            x, y = _series(h, "loss")
            if len(x):
                loss_ax.plot(x, y, color=colour, alpha=0.25, linewidth=0.8)
                loss_ax.plot(x, ema(y, np.ones_like(y), smoothing), color=colour, linewidth=1.6,
                             label=f"{name} train" if several else "train (smoothed)")
            its, vals = h.val_curve()
            if its:
                loss_ax.plot(its, vals, color=colour, linestyle="--", marker="o", markersize=3,
                             label=f"{name} val" if several else "val")
            for ax, attr, scale in ((lr_ax, "lr", 1.0), (dt_ax, "dt_ms", 1.0), (mfu_ax, "mfu", 100.0)):
                x, y = _series(h, attr, scale)
                if len(x):
                    ax.plot(x, y, color=colour, linewidth=1.2, label=name)
            cfg = h.train_config()
            if not len(_series(h, "lr")[0]) and cfg is not None and h.steps:  # a nanoGPT log: the config's schedule
                x = _schedule_iters(cfg, h.steps[-1].iter)
                lr_ax.plot(x, lr_array(cfg, x), color=colour, linewidth=1.2, linestyle=":",
                           label=f"{name} (from its config)")
        peaks = {h.mfu_peak for h in histories}
        titles = list(PANELS)
        if len(peaks) == 1 and None not in peaks:   # one peak for every run: say which
            titles[3] = f"MFU (% of {peaks.pop() / 1e12:.4g} TFLOP/s)"
        for ax, title in zip(axes.flat, titles):
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.grid(True, alpha=0.3)
            if not ax.has_data():
                ax.text(0.5, 0.5, "not in this run's record", ha="center", va="center", transform=ax.transAxes,
                        color="grey")
        loss_ax.legend(loc="upper right", fontsize="small")
        for ax in (lr_ax, mfu_ax) if several else (lr_ax,):
            if ax.has_data():
                ax.legend(loc="best", fontsize="small")
        fig.suptitle(", ".join(run_label(h) for h in histories))
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
