"""Export a RunHistory: rows of steps and evals (csv, parquet, jsonl) and the loss chart.

Rows follow the source one to one: a step row per step event (nanoGPT `iter N:` line), an
eval row per eval event (`step N:` line); evals sort before the step of the same iteration,
as nanoGPT prints them. Files are written atomically (gpttui.fs.atomic).

What a nanoGPT log leaves out is filled in where the run says it: `tokens` (seen after the row:
(iter + 1) x tokens per iteration for a step, iter x it for an eval), `tokens_per_s`, and `lr`
(its config's schedule, as nanoGPT's get_lr, where the log holds the config). `mfu`
is a fraction (0..1) of the peak in `mfu_peak_flops` (nanoGPT's logs: its fixed A100 figure, a
running average). `checkpointed` marks the row after which a checkpoint was written (its eval
row, else the last step before it), with `checkpoint` its path. Parquet also carries the run's
config, peak and dtype as schema metadata (METADATA_KEYS). A loss that is not finite is data
(where a run diverged): csv and parquet keep it as nan or inf, jsonl as null (JSON has neither);
the chart leaves it out.
"""

from __future__ import annotations

import bisect
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from gpttui.fs import atomic
from gpttui.run.history import RunHistory

_STEP_FIGURES = ("t", "loss", "lr", "dt_ms", "tokens_per_s", "mfu", "grad_norm")
SCHEMA = pa.schema(
    [("kind", pa.string()), ("iter", pa.int64())]
    + [(name, pa.float64()) for name in _STEP_FIGURES]
    + [("tokens", pa.int64()), ("train_loss", pa.float64()), ("val_loss", pa.float64()),
       ("checkpointed", pa.bool_()), ("checkpoint", pa.string()), ("mfu_peak_flops", pa.float64())]
)
METADATA_KEYS = ("gpttui.source", "gpttui.config", "gpttui.mfu", "gpttui.peak_flops", "gpttui.dtype",
                 "gpttui.tokens_per_iter")
TRAIN_COLOUR, VAL_COLOUR = 33, 208   # blue line, orange points (xterm-256 indices)
MAX_CHART_POINTS = 4000   # plotext costs ~15 us a point; min/max buckets keep the shape


def rows(h: RunHistory) -> list[dict]:
    """Step and eval rows in iteration order (eval first within an iteration)."""
    tpi = h.tokens_per_iter
    peak = h.mfu_peak
    lr_of = h.config_lr() if h.kind == "nanogpt-log" else None   # nanoGPT prints no lr
    out = [(e.iter, 0, i, {"kind": "eval", "iter": e.iter, "t": e.t, "train_loss": e.train_loss,
                           "val_loss": e.val_loss, "tokens": e.iter * tpi if tpi else None})
           for i, e in enumerate(h.evals)]
    out += [(s.iter, 1, i, {"kind": "step", "iter": s.iter, "t": s.t, "loss": s.loss,
                            "lr": s.lr if s.lr is not None or lr_of is None else lr_of(s.iter),
                            "dt_ms": s.dt_ms, "mfu": s.mfu, "grad_norm": s.grad_norm,
                            "mfu_peak_flops": peak if s.mfu is not None else None,
                            "tokens_per_s": s.tokens_per_s if s.tokens_per_s is not None
                            else tpi / (s.dt_ms / 1000) if tpi and s.dt_ms else None,
                            "tokens": s.tokens if s.tokens is not None else (s.iter + 1) * tpi if tpi else None})
            for i, s in enumerate(h.steps)]
    out.sort(key=lambda r: r[:3])
    flat = [{name: r[3].get(name) for name in SCHEMA.names} for r in out]
    evals: dict[int, dict] = {}
    for row in flat:
        row["checkpointed"] = False
        if row["kind"] == "eval":
            evals.setdefault(row["iter"], row)
    steps = [row for row in flat if row["kind"] == "step"]   # in iteration order
    step_iters = [row["iter"] for row in steps]
    for c in h.checkpoints:
        # the eval at its iteration, else the last step before it (checkpoint N holds steps 0..N-1)
        before = bisect.bisect_left(step_iters, c.iter)
        at = evals.get(c.iter) or (steps[before - 1] if before else None)
        if at is not None:
            at["checkpointed"], at["checkpoint"] = True, c.path
    return flat


def mfu_note(h: RunHistory) -> str:
    """What the mfu column is a fraction of, in words."""
    if not h.mfu_peak:
        return "mfu: a fraction of the device's peak FLOP/s (the source does not say which)"
    dtype = h.device.get("dtype") or h.config.get("dtype")
    name = h.device.get("device_name")
    of = f"{h.mfu_peak / 1e12:.4g} TFLOP/s" + (f" ({name}, {dtype})" if name and dtype else f" ({dtype})" if dtype else "")
    if h.kind == "nanogpt-log":
        return f"mfu: a fraction of {of}, nanoGPT's fixed A100 bfloat16 peak whatever the card; a running average"
    return f"mfu: a fraction of {of}, measured per iteration"


def metadata(h: RunHistory) -> dict[str, str]:
    """The run's config, mfu's peak and dtype, as parquet schema metadata (strings)."""
    dtype = h.device.get("dtype") or h.config.get("dtype")
    return {"gpttui.source": h.source, "gpttui.config": json.dumps(h.config, sort_keys=True, default=str),
            "gpttui.mfu": mfu_note(h), "gpttui.peak_flops": "" if h.mfu_peak is None else repr(h.mfu_peak),
            "gpttui.dtype": dtype or "", "gpttui.tokens_per_iter": str(h.tokens_per_iter or "")}


def table(h: RunHistory) -> pa.Table:
    return pa.Table.from_pylist(rows(h), schema=SCHEMA.with_metadata(metadata(h)))


def write_rows(h: RunHistory, path: str | Path, fmt: str) -> int:
    """Write the rows as csv, parquet or jsonl; returns the row count."""
    tbl = table(h)
    if fmt == "jsonl":
        lines = [json.dumps({k: _json_value(v) for k, v in r.items()}, allow_nan=False)
                 for r in tbl.to_pylist()]
        atomic.write_bytes(path, ("\n".join(lines) + "\n" if lines else "").encode())
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(tbl, sink)
        atomic.write_bytes(path, sink.getvalue().to_pybytes())
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(tbl, sink)
        atomic.write_bytes(path, sink.getvalue().to_pybytes())
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return tbl.num_rows


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _thin(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2n points: each bucket keeps its min and its max (spikes stay visible)."""
    if len(x) <= 2 * n:
        return x, y
    out_x, out_y = [], []
    for idx in np.array_split(np.arange(len(x)), n):
        seg = y[idx]
        lo, hi = idx[np.nanargmin(seg)], idx[np.nanargmax(seg)]
        for i in sorted({lo, hi}):
            out_x.append(x[i])
            out_y.append(y[i])
    return np.array(out_x), np.array(out_y)


def chart_matrix(h: RunHistory, width: int = 100, height: int = 30):
    """The loss chart (train steps as a line, val evals as points) as a plotext matrix."""
    import plotext as plt

    fig = plt.figure
    fig.clear()
    fig.plot_size(width, height)
    steps = [(s.iter, s.loss) for s in h.steps if s.loss is not None and math.isfinite(s.loss)]
    if steps:
        x, y = _thin(np.array([s[0] for s in steps], float), np.array([s[1] for s in steps]),
                     MAX_CHART_POINTS // 2)
        train = plt.marker("braille", plt.pixel(foreground=TRAIN_COLOUR))
        fig.draw(fig.signal(x.tolist(), y.tolist(), marker=train).lines().label("train"))
    val_points = [(e.iter, e.val_loss) for e in h.evals if e.val_loss is not None and math.isfinite(e.val_loss)]
    its, vals = [float(p[0]) for p in val_points], [p[1] for p in val_points]   # a chart has no place for NaN
    if its:
        val = plt.marker("●", plt.pixel(foreground=VAL_COLOUR))
        fig.draw(fig.signal(its, vals, marker=val).label("val"))
    if steps or its:   # the legend in the top right corner, in data units, away from the curve
        xs = [s[0] for s in steps] + list(its)
        ys = [s[1] for s in steps] + list(vals)
        fig.legend(True, x=float(max(xs)), y=float(max(ys)), ha="right", va="top", relative=True)
    fig.title(f"{Path(h.source).name}: loss")
    fig.label("iter", axis="x")
    fig.label("loss", axis="y")
    return fig.build()


def write_chart(h: RunHistory, path: str | Path, width: int = 100, height: int = 30) -> None:
    """Save the chart as plotext saves it (.html: a web page, else plain text), atomically.

    plotext picks the format by the file name's extension, so it saves under the same name in
    a scratch directory first."""
    name = Path(path).name
    with tempfile.TemporaryDirectory() as scratch:
        chart_matrix(h, width, height).save(str(Path(scratch) / name))
        atomic.write_bytes(path, (Path(scratch) / name).read_bytes())
