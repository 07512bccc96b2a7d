"""Runs opened read-only (`gpttui open`): a run directory, a metrics.jsonl or a nanoGPT log, read
into a `LiveRun` as the dashboard shows it. A run whose engine is still alive keeps a tail on its
metrics.jsonl, and a nanoGPT log its reader, so the viewer follows them as they grow.

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
from gpttui.run.history import RunHistory, open_run
from gpttui.run.metrics import MetricsTail
from gpttui.run.nanogpt_log import LogReader


@dataclass
class OpenedRun:
    path: Path
    name: str
    colour: int                           # its colour on the compare screen's chart
    live: LiveRun = field(default_factory=LiveRun)
    tail: MetricsTail | None = None       # set while the run's engine is alive
    reader: LogReader | None = None       # a log's: it reads on where train.py still writes it ...
    grew: bool = False                    # ... and it has, since it was opened
    clock: LogClock | None = None         # the log's steps' times, estimated (it has none)
    added: list[str] = field(default_factory=list)   # the log's lines read since the log pane took them
    error: str = ""                       # why it could not be read (then it shows only in the table)

    @property
    def history(self) -> RunHistory:
        return self.live.history

    @property
    def followed(self) -> bool:
        """Whether what it shows is still growing (its engine alive, its log written to since opened)."""
        return self.tail is not None or self.grew

    def poll(self) -> bool:
        """Take what a live run's engine, or the train.py writing a log, wrote since the last poll;
        True if anything came."""
        if self.reader is not None:
            return self._read_log()
        if self.tail is None:
            return False
        events = self.tail.poll()
        if not events:
            return False
        self.live.add_all(events)
        if self.live.state in layout.FINAL_STATES:
            self.tail = None
        return True

    def _read_log(self) -> bool:
        """What train.py added to the log since the last poll; True if it added anything."""
        assert self.reader is not None
        read = self.reader.offset
        try:
            events = self.reader.read()
        except OSError:   # gone or unreadable now: what was read stays
            self.reader = None
            return False
        if self.reader.offset == read:
            return False
        if not self.grew:
            self.added.append(f"── {self.path.name} is being written: its lines from here on")
        self.grew = True
        self.added += self.reader.lines
        if self.clock is not None:
            self.clock.stamp(events)
        self.live.add_all(events)
        self.history.errors = [e] if (e := self.reader.error()) is not None else []   # (a log keeps the one it ends on)
        self.config_lrs([e["iter"] for e in events if e["type"] == "step"])
        return True

    def config_lrs(self, iters: list[int]) -> None:
        """The lr panel's values at these iterations of a log: nanoGPT prints no lr, and its get_lr is a
        function of the config."""
        if iters and (lr := self.history.config_lr()) is not None:
            self.live.lr.extend(lr(it) for it in iters)

    def take_added(self) -> list[str]:
        """The log's lines read since the last call, for the log pane (as `tail -f` shows them)."""
        added, self.added = self.added, []
        return added

    def describe(self) -> list[str]:
        """What was read, for the log pane."""
        h = self.history
        what = "nanoGPT log" if h.kind == "nanogpt-log" else "run"
        lines = [f"── {what} {self.path}: {len(h.steps):,} steps, {len(h.evals):,} evals, "
                 f"{len(h.checkpoints):,} checkpoints"]
        if h.skipped_lines:
            lines.append(f"── {h.skipped_lines} stray line{'s' * (h.skipped_lines != 1)} skipped")
        if h.repaired_lines:
            lines.append(f"── {h.repaired_lines} line{'s' * (h.repaired_lines != 1)} read without fields that held "
                         f"bad values, the first: {h.first_repair}")
        if (e := h.fatal_error) is not None:
            lines.append(f"── it ended in an error at iter {e.get('iter', 0):,}: {e.get('message', '')}")
        if self.tail is not None:
            lines.append("── its engine is running: following metrics.jsonl")
        return lines


@dataclass
class LogClock:
    """Estimated seconds since the start of a log without timestamps, line by line: a logged
    iteration's time stands for the iterations since the previous line; an eval iteration's extra
    (its pause) is counted once, not for every iteration it stands for (those take `typical`)."""

    typical: float          # a normal iteration's seconds
    t: float = 0.0
    prev: int | None = None
    last_eval: int | None = None   # the iteration of the last eval (a log read as it grows)

    def at(self, it: int, dt: float, is_eval: bool) -> float:
        gap = 1 if self.prev is None or it <= self.prev else it - self.prev
        self.t += dt + (gap - 1) * (self.typical if is_eval else dt)
        self.prev = it
        return self.t

    def stamp(self, events: list[dict]) -> None:
        """Time a followed log's new steps on from the last. Their lines come in order, an eval's before
        its iteration's (in this read or the last); a normal iteration's time is then the latest."""
        for e in events:
            if e["type"] == "eval":
                self.last_eval = e["iter"]
            elif e["type"] == "step" and e.get("t") is None and e.get("dt_ms") is not None:
                dt, is_eval = e["dt_ms"] / 1000, e["iter"] == self.last_eval
                e["t"] = self.at(e["iter"], dt, is_eval)
                if not is_eval:
                    self.typical = dt


def log_clock(h: RunHistory) -> tuple[dict[int, float], LogClock]:
    """`LogClock`'s time at each logged iteration of the history, and the clock, to go on with (a
    log still being written); the typical iteration is the median of those that are not evals."""
    timed = [(s.iter, s.dt_ms / 1000) for s in h.steps if s.dt_ms is not None]
    evals = {e.iter for e in h.evals}
    normal = sorted(dt for it, dt in timed if it not in evals) or [0.0]
    clock = LogClock(normal[len(normal) // 2], last_eval=max(evals, default=None))
    return {it: clock.at(it, dt, it in evals) for it, dt in timed}, clock


def history_events(h: RunHistory) -> list[dict[str, Any]]:
    """A loaded history (e.g. a nanoGPT log) as events in iteration order, to feed a LiveRun.

    Steps without wall time get the estimate of `log_clock`, so run time and ETA show."""
    times = log_clock(h)[0] if all(s.t is None for s in h.steps) else {}
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
        run.live.history.count_lines(run.tail)
        run.live.history.source = str(metrics)
        if engine_state.status(run_dir).kind != "alive":
            run.tail = None
            if run.live.state in layout.ACTIVE_STATES:
                run.live.history.state = "stopped"   # the engine that wrote this is gone
        return run
    loaded, reader = open_run(path, whole=False)   # (a line train.py is still writing waits for its end)
    run.reader = reader
    if config is not None:
        with_config(loaded, config)
    # the LiveRun rebuilds the records from events, on a history that keeps what a log says
    # beyond them (config, parameter count, tokens per iteration, stray lines, sessions)
    seed = copy.copy(loaded)
    seed.steps, seed.evals, seed.checkpoints = [], [], []
    run.live.history = seed
    run.live.add_all(history_events(loaded))
    if all(s.t is None for s in loaded.steps):   # the steps the log adds are timed on from its last
        run.clock = log_clock(loaded)[1]
    if not run.live.lr:
        run.config_lrs([s.iter for s in loaded.steps[-run.live.lr.maxlen:]])
    return run
