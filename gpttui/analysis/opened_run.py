"""Runs opened read-only (`gpttui open`): a run directory, a metrics.jsonl or a nanoGPT log, read
into a `LiveRun` as the dashboard shows it. A run whose engine is still alive keeps a tail on its
metrics.jsonl, so the viewer can follow it.

No Textual here: viewer.py polls these and the compare screen lists them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpttui.analysis.live import LiveRun
from gpttui.run import config as C
from gpttui.run import engine_state, layout
from gpttui.run.history import RunHistory, load_run
from gpttui.run.metrics import MetricsTail
from gpttui.run.schedule import lr_at


@dataclass
class OpenedRun:
    path: Path
    name: str
    colour: int                           # its colour on the compare screen's chart
    live: LiveRun = field(default_factory=LiveRun)
    tail: MetricsTail | None = None       # set while the run's engine is alive
    error: str = ""                       # why it could not be read (then it shows only in the table)

    @property
    def history(self) -> RunHistory:
        return self.live.history

    def poll(self) -> bool:
        """Take what a live run's engine wrote since the last poll; True if anything came."""
        if self.tail is None:
            return False
        events = self.tail.poll()
        if not events:
            return False
        self.live.add_all(events)
        if self.live.state in layout.FINAL_STATES:
            self.tail = None
        return True

    def describe(self) -> list[str]:
        """What was read, for the log pane."""
        h = self.history
        what = "nanoGPT log" if h.kind == "nanogpt-log" else "run"
        lines = [f"── {what} {self.path}: {len(h.steps):,} steps, {len(h.evals):,} evals, "
                 f"{len(h.checkpoints):,} checkpoints"]
        if h.skipped_lines:
            lines.append(f"── {h.skipped_lines} stray line{'s' * (h.skipped_lines != 1)} skipped")
        if (e := h.fatal_error) is not None:
            lines.append(f"── it ended in an error at iter {e.get('iter', 0):,}: {e.get('message', '')}")
        if self.tail is not None:
            lines.append("── its engine is running: following metrics.jsonl")
        return lines


def log_times(h: RunHistory) -> dict[int, float]:
    """Estimated seconds since the start at each logged iteration of a log without timestamps.

    A logged iteration's time stands for the iterations since the previous line; an eval
    iteration's extra (its pause) is counted once, not for every iteration it stands for.
    """
    timed = [(s.iter, s.dt_ms / 1000) for s in h.steps if s.dt_ms is not None]
    evals = {e.iter for e in h.evals}
    normal = sorted(dt for it, dt in timed if it not in evals) or [0.0]
    typical = normal[len(normal) // 2]
    out: dict[int, float] = {}
    t, prev = 0.0, None
    for it, dt in timed:
        gap = 1 if prev is None or it <= prev else it - prev
        t += dt + (gap - 1) * (typical if it in evals else dt)
        out[it] = t
        prev = it
    return out


def history_events(h: RunHistory) -> list[dict[str, Any]]:
    """A loaded history (e.g. a nanoGPT log) as events in iteration order, to feed a LiveRun.

    Steps without wall time get the estimate of `log_times`, so run time and ETA show."""
    times = log_times(h) if all(s.t is None for s in h.steps) else {}
    out: list[tuple[int, int, dict[str, Any]]] = []
    out += [(e.iter, 0, {"type": "eval", "iter": e.iter, "t": e.t, "train_loss": e.train_loss,
                         "val_loss": e.val_loss}) for e in h.evals]
    out += [(c.iter, 1, {"type": "checkpoint", "iter": c.iter, "t": c.t, "path": c.path,
                         "val_loss": c.val_loss}) for c in h.checkpoints]
    out += [(s.iter, 2, {"type": "step", "iter": s.iter, "t": times.get(s.iter, s.t), "loss": s.loss, "lr": s.lr,
                         "dt_ms": s.dt_ms, "tokens_per_s": s.tokens_per_s, "mfu": s.mfu,
                         "grad_norm": s.grad_norm, "tokens": s.tokens}) for s in h.steps]
    out.sort(key=lambda x: x[:2])
    return [e for *_, e in out]


def with_config(h: RunHistory, config: Path) -> None:
    """Give a history the config it ran with (a log that has no config header): the file's values
    under what the log itself says (its `Overriding:` lines ran last). Raises C.ConfigError."""
    values = C.read_config_file(config)
    try:
        text = config.read_text(encoding="utf-8-sig") if config.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    h.config = {**values, **h.config}
    h.config_complete = True
    h.config_text = text + h.config_text
    h.config_file = h.config_file or str(config)


def open_source(path: Path, colour: int, config: Path | None = None) -> OpenedRun:
    """Read one run directory, metrics.jsonl or nanoGPT log (slow for a long run: off the UI thread);
    `config` gives a log the config it ran with (`gpttui open LOG --config FILE`)."""
    run = OpenedRun(path, path.name, colour)
    metrics = path / layout.METRICS if path.is_dir() else path
    if path.is_dir() or path.suffix == ".jsonl":
        run_dir = path if path.is_dir() else path.parent
        if path.is_dir() and (path / layout.CONFIG).exists():
            run.live.history.config.update(C.read_config_file(path / layout.CONFIG))
            run.live.history.config_complete = True
        run.tail = MetricsTail(metrics)
        run.live.add_all(run.tail.poll())
        run.live.history.skipped_lines = run.tail.skipped
        run.live.history.source = str(metrics)
        if engine_state.status(run_dir).kind != "alive":
            run.tail = None
            if run.live.state in layout.ACTIVE_STATES:
                run.live.history.state = "stopped"   # the engine that wrote this is gone
        return run
    loaded = load_run(path)
    if config is not None:
        with_config(loaded, config)
    # the LiveRun rebuilds the records from events, on a history that keeps what a log says
    # beyond them (config, parameter count, tokens per iteration, stray lines, sessions)
    seed = copy.copy(loaded)
    seed.steps, seed.evals, seed.checkpoints = [], [], []
    run.live.history = seed
    run.live.add_all(history_events(loaded))
    if not run.live.lr and (cfg := loaded.train_config()) is not None:
        # nanoGPT prints no lr; its get_lr is a function of the config, so the lr panel shows that
        run.live.lr.extend(lr_at(cfg, s.iter) for s in loaded.steps[-run.live.lr.maxlen:])
    return run
