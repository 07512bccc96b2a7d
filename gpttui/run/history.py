"""A run's history: what the dashboard, `gpttui open`, `export` and the doctor share.

`RunHistory` is built by applying protocol events one at a time (`add`): from a run
directory's metrics.jsonl (`from_metrics`, read by gpttui.run.metrics), or from a nanoGPT
`train.py` stdout log (`from_nanogpt_log`, parsed by gpttui.run.nanogpt_log). `load_run`
picks the right one for a path.

A hello whose start_iter is not past the last recorded iteration means the run resumed from
an earlier checkpoint: the new branch replaces the abandoned one (no zig-zag in the curves).
"""

from __future__ import annotations

import bisect
import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from gpttui.run import config as C
from gpttui.run import layout, nanogpt_log, protocol, schedule
from gpttui.run.metrics import EventReader, LineCounts


class RunLogError(ValueError):
    """A path that is not a run, a metrics.jsonl or a nanoGPT log; phrased as one line."""


@dataclass
class Step:
    iter: int
    t: float | None
    loss: float
    lr: float | None = None
    dt_ms: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None          # fraction 0..1 against `RunHistory.mfu_peak`
    grad_norm: float | None = None
    tokens: int | None = None         # tokens seen so far


@dataclass
class Eval:
    iter: int
    t: float | None
    train_loss: float | None
    val_loss: float | None


@dataclass
class Checkpoint:
    iter: int
    t: float | None
    path: str
    val_loss: float | None


@dataclass
class Session:
    """One process lifetime of the engine (a hello), or one start of nanoGPT in a log."""

    start_iter: int
    t_start: float | None = None
    t_end: float | None = None
    world_size: int = 1                # processes (GPUs) that trained it; the hello's world_size
    config: dict[str, Any] | None = None   # a nanoGPT log's config as read when this process started


def starting(e: dict) -> bool:
    """A new engine's first word, before its hello: its time is the session's to come, not the last one's."""
    return e.get("type") == "state" and e.get("state") == "starting"


def _train_config(values: dict[str, Any]) -> C.TrainConfig | None:
    try:
        return C.build({k: v for k, v in values.items() if k in C.FIELDS})
    except (C.ConfigError, TypeError):
        return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class RunHistory:
    hello: dict | None = None
    config: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    evals: list[Eval] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    state: str | None = None
    errors: list[dict] = field(default_factory=list)
    skipped_lines: int = 0             # lines of the source not used (torn, garbled, ill-typed, stray)
    repaired_lines: int = 0            # lines used without the fields that held bad values
    first_repair: str = ""             # the first of those fields, where, and what it should have held
    source: str = ""
    # What else a source tells (mostly nanoGPT logs, which carry no hello):
    kind: str = "events"               # "events" (metrics.jsonl / live) or "nanogpt-log"
    config_complete: bool = False      # config holds every knob (hello, config.toml, echoed .py)
    config_text: str = ""              # echoed/loaded config source text (promises sizes)
    config_file: str | None = None     # its file name
    config_unknown: dict[str, str] = field(default_factory=dict)  # echoed keys gpttui doesn't know
    params_reported: float | None = None     # nanoGPT's "number of parameters: 123.59M"
    tokens_per_iter_reported: int | None = None
    mfu_peak: float | None = None      # FLOP/s the recorded mfu was measured against
    mfu_smoothed: bool = False         # nanoGPT prints a running average (0.9/0.1 EMA)
    device: dict[str, Any] = field(default_factory=dict)  # device, device_name, dtype, peak_flops
    sessions: list[Session] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)   # (from, to) wall times the engine said paused
    paused_since: float | None = None  # a pause still going on
    lines: int = 0                     # lines read from the source

    # ------------------------------------------------------------ events

    def add(self, event: dict) -> None:
        """Apply one protocol event; unknown types and malformed fields are ignored."""
        kind = event.get("type")
        it = event.get("iter")
        if not isinstance(it, int) or isinstance(it, bool):
            it = self.last_iter or 0
        t = _num(event.get("t"))
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return
        handler(event, it, t)
        if t is not None and self.sessions and not starting(event):
            s = self.sessions[-1]
            s.t_start = t if s.t_start is None else s.t_start
            s.t_end = t if s.t_end is None else max(s.t_end, t)

    def _on_hello(self, e: dict, it: int, t: float | None) -> None:
        if self.paused_since is not None and self.sessions:   # the engine ended paused (killed): the pause ended with it
            self._end_pause(self.sessions[-1].t_end)
        start = e.get("start_iter", it)
        start = start if isinstance(start, int) else it
        last = self.last_iter
        if last is not None and start <= last:
            self.truncate_from(start)
        self.hello = e
        if isinstance(e.get("config"), dict):
            self.config.update(e["config"])
            self.config_complete = True
        if isinstance(e.get("max_iters"), int):
            self.config["max_iters"] = e["max_iters"]
        self.mfu_peak = _num(e.get("peak_flops")) or self.mfu_peak
        self.device = {k: e[k] for k in ("device", "device_name", "dtype", "peak_flops") if k in e}
        ws = e.get("world_size")
        ws = ws if isinstance(ws, int) and not isinstance(ws, bool) and ws > 0 else 1
        self.sessions.append(Session(start, t, t, ws))

    def _on_step(self, e: dict, it: int, t: float | None) -> None:
        loss = _num(e.get("loss"))
        step = Step(it, t, math.nan if loss is None else loss, _num(e.get("lr")), _num(e.get("dt_ms")),
                    _num(e.get("tokens_per_s")), _num(e.get("mfu")), _num(e.get("grad_norm")),
                    e["tokens"] if isinstance(e.get("tokens"), int) else None)
        if self.steps and self.steps[-1].iter == it:
            self.steps[-1] = step
        else:
            self.steps.append(step)

    def _on_eval(self, e: dict, it: int, t: float | None) -> None:
        ev = Eval(it, t, _num(e.get("train_loss")), _num(e.get("val_loss")))
        if self.evals and self.evals[-1].iter == it:
            self.evals[-1] = ev
        else:
            self.evals.append(ev)

    def _on_checkpoint(self, e: dict, it: int, t: float | None) -> None:
        ckpt = Checkpoint(it, t, str(e.get("path", "")), _num(e.get("val_loss")))
        if self.checkpoints and self.checkpoints[-1].iter == it and self.checkpoints[-1].path == ckpt.path:
            self.checkpoints[-1] = ckpt    # saved again at the same iteration (e.g. after a resume)
        else:
            self.checkpoints.append(ckpt)

    def _on_state(self, e: dict, it: int, t: float | None) -> None:
        if isinstance(e.get("state"), str):
            self.state = e["state"]
            if t is None or starting(e):
                return
            if self.state == "paused":
                self.paused_since = t if self.paused_since is None else self.paused_since
            else:
                self._end_pause(t)

    def _end_pause(self, t: float | None) -> None:
        if self.paused_since is not None and t is not None:
            self.pauses.append((self.paused_since, max(t, self.paused_since)))
        self.paused_since = None

    def paused_between(self, start: float, end: float) -> float:
        """Seconds the engine said it was paused between two wall times (a pause still going on included)."""
        spans = [*self.pauses, *([(self.paused_since, end)] if self.paused_since is not None else [])]
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)

    def _on_config(self, e: dict, it: int, t: float | None) -> None:
        if isinstance(e.get("changes"), dict):
            self.config.update(e["changes"])

    def _on_undo(self, e: dict, it: int, t: float | None) -> None:
        """An undo done took the run back to `to_iter`: what came after is abandoned, as at a resume."""
        to = e.get("to_iter")
        if e.get("done") is True and isinstance(to, int) and not isinstance(to, bool):
            self.truncate_from(to)
            if not self.sessions:
                self.sessions.append(Session(to, t, t))

    def _on_error(self, e: dict, it: int, t: float | None) -> None:
        self.errors.append(e)

    def _on_session(self, e: dict, it: int, t: float | None) -> None:
        """A nanoGPT process starting at `it` (its log has no hello); before the last recorded
        iteration, a restart from an earlier checkpoint."""
        last = self.last_iter
        if last is not None and it < last:
            self.truncate_from(it)
        config = protocol.clean_config(e["config"]) if isinstance(e.get("config"), dict) else None
        if not self.sessions or self.sessions[-1].start_iter != it:
            self.sessions.append(Session(it, t, t, config=config))
        elif config is not None:
            self.sessions[-1].config = config

    def truncate_from(self, start: int) -> None:
        """Drop what was recorded at iterations >= start (the abandoned branch of a resume).

        A checkpoint at `start` stays: it is the one the new branch resumed from.
        """
        self.steps = [s for s in self.steps if s.iter < start]
        self.evals = [e for e in self.evals if e.iter < start]
        self.checkpoints = [c for c in self.checkpoints if c.iter <= start]
        kept = [s for s in self.sessions if s.start_iter < start]
        if kept:
            last_t = [x.t for x in (*self.steps, *self.evals, *self.checkpoints) if x.t is not None]
            if last_t and kept[-1].t_end is not None:
                kept[-1].t_end = min(kept[-1].t_end, max(last_t))
        self.sessions = kept

    def until(self, last: int) -> "RunHistory":
        """A copy of the history as it stood at iteration `last` (later records dropped)."""
        h = copy.copy(self)
        h.steps = [s for s in self.steps if s.iter <= last]
        h.evals = [e for e in self.evals if e.iter <= last]
        h.checkpoints = [c for c in self.checkpoints if c.iter <= last]
        h.errors = [e for e in self.errors if not isinstance(e.get("iter"), int) or e["iter"] <= last]
        h.sessions = [copy.copy(s) for s in self.sessions if s.start_iter <= last]
        times = [x.t for x in (*h.steps, *h.evals) if x.t is not None]
        h.pauses = [p for p in self.pauses if times and p[1] <= max(times)]
        h.paused_since = None
        if h.sessions and times and h.sessions[-1].t_end is not None:
            h.sessions[-1].t_end = min(h.sessions[-1].t_end, max(times))
        if self.last_iter is not None and last < self.last_iter:
            h.state = "running"
        return h

    # ------------------------------------------------------------ helpers

    @property
    def last_iter(self) -> int | None:
        its = [x[-1].iter for x in (self.steps, self.evals) if x]
        if its:
            return max(its)
        return self.sessions[-1].start_iter if self.sessions else None

    @property
    def fatal_error(self) -> dict | None:
        """The error event that ended the run: a nanoGPT log's (its reader keeps only a traceback
        that no record came after), or a failed gpttui run's last one; None otherwise."""
        if self.kind != "nanogpt-log" and self.state != "failed":
            return None
        return next((e for e in reversed(self.errors) if not e.get("refused")), None)

    @property
    def best_val(self) -> float | None:
        vals = [e.val_loss for e in self.evals if e.val_loss is not None and not math.isnan(e.val_loss)]
        return min(vals) if vals else None

    @property
    def tokens_per_iter(self) -> int | None:
        if self.hello and isinstance(self.hello.get("tokens_per_iter"), int):
            return self.hello["tokens_per_iter"]
        if self.tokens_per_iter_reported:
            return self.tokens_per_iter_reported
        cfg = self.train_config()
        if cfg is not None:
            return cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size
        return None

    @property
    def max_iters(self) -> int | None:
        """max_iters as last set (live changes included); None when the source never said."""
        v = self.config.get("max_iters")
        if isinstance(v, int):
            return v
        return C.DEFAULTS.max_iters if self.config_complete else None

    @property
    def vocab_size(self) -> int | None:
        """The model's vocabulary: as the config or a nanoGPT log says it, else from the engine's
        parameter counts (the token embedding is vocab x n_embd), else, for a model trained from
        scratch, from its loss at iteration 0 (an untrained model's is about ln(vocab)); None
        when nothing says."""
        v, width = self.config.get("vocab_size"), self.config.get("n_embd")
        if isinstance(v, int) and v > 0:
            return v
        params = self.hello.get("params") if self.hello else None
        if isinstance(params, dict) and isinstance(width, int) and width > 0:
            embedding = _num(params.get("nanogpt")), _num(params.get("non_embedding"))
            if embedding[0] is not None and embedding[1] is not None and embedding[0] > embedding[1]:
                return round((embedding[0] - embedding[1]) / width)
        first = self.evals[0] if self.evals else None
        if (first is not None and first.iter == 0 and self.config.get("init_from", "scratch") == "scratch"
                and first.val_loss is not None and 0 < first.val_loss < 20):
            return round(math.exp(first.val_loss))
        return None

    @property
    def tokens_seen(self) -> int | None:
        """Tokens trained on up to the last iteration: the engine's count, else the iterations done
        times tokens/iter (iteration N's step makes N + 1 done, from 0; an eval at N comes before it)."""
        if self.steps and self.steps[-1].tokens is not None and self.steps[-1].iter == self.last_iter:
            return self.steps[-1].tokens
        tpi, last = self.tokens_per_iter, self.last_iter
        if not tpi or last is None:
            return None
        return tpi * (last + 1 if self.steps and self.steps[-1].iter == last else last)

    def train_config(self) -> C.TrainConfig | None:
        """The full TrainConfig, when the source gave every knob (else None: don't guess)."""
        return _train_config(self.config) if self.config_complete else None

    def count_lines(self, reader: LineCounts) -> None:
        """What a reader of the run's metrics.jsonl made of its lines: skipped, repaired (and the first
        repair), read."""
        self.skipped_lines, self.repaired_lines, self.lines = reader.skipped, reader.repaired, reader.lines
        self.first_repair = reader.first_repair

    def session_config(self, session: Session) -> C.TrainConfig | None:
        """The full TrainConfig a session started with, where its source says it apart (a nanoGPT
        log's processes); None otherwise."""
        return None if session.config is None else _train_config(session.config)

    def config_lr(self) -> Callable[[int], float] | None:
        """The lr at an iteration as the config's schedule (nanoGPT's get_lr) gives it, for a source
        that prints none: of the config its process started with (a log appended to by a resume may
        change the schedule), else of the run's. None without a full config."""
        cfg = self.train_config()
        if cfg is None:
            return None
        starts = [s.start_iter for s in self.sessions]
        configs = [self.session_config(s) or cfg for s in self.sessions]

        def lr(it: int) -> float:
            k = bisect.bisect_right(starts, it) - 1
            return schedule.lr_at(configs[k] if k >= 0 else cfg, it)
        return lr

    def val_curve(self) -> tuple[list[int], list[float]]:
        """(iters, val losses) of the evals with a finite val loss: a diverged eval (a nanoGPT
        log's nan or inf, kept as read) has no point on a curve; the doctor says it."""
        pts = [(e.iter, e.val_loss) for e in self.evals if e.val_loss is not None and math.isfinite(e.val_loss)]
        return [p[0] for p in pts], [p[1] for p in pts]

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_events(cls, events: Iterator[dict], source: str = "") -> "RunHistory":
        h = cls(source=source)
        for e in events:
            h.add(e)
        return h

    @classmethod
    def from_metrics(cls, path: str | Path) -> "RunHistory":
        """From RUN_DIR/metrics.jsonl (or the file itself); config.toml fills in a missing hello."""
        p = Path(path)
        run_dir = p if p.is_dir() else p.parent
        if p.is_dir():
            p = p / layout.METRICS
        h = cls(source=str(p))
        toml = run_dir / layout.CONFIG
        if toml.exists():
            try:
                text = toml.read_text(encoding="utf-8-sig")
                h.config.update(protocol.clean_config(C.parse_toml(text, str(toml))))
                h.config_text, h.config_file, h.config_complete = text, str(toml), True
            except (OSError, UnicodeDecodeError, C.ConfigError):
                pass
        if p.exists():
            reader = EventReader(p)
            try:
                for e in reader:
                    h.add(e)
            except OSError as e:
                raise RunLogError(f"{p}: cannot read: {e.strerror or e}") from None
            h.count_lines(reader)
        elif not toml.exists():
            raise RunLogError(f"{run_dir}: not a run directory (no metrics.jsonl or config.toml)")
        return h

    @classmethod
    def from_nanogpt_log(cls, path: str | Path, whole: bool = True) -> tuple["RunHistory", nanogpt_log.LogReader]:
        """The log as it stands, and its reader, to read on where it grows (`LogReader.log`: `whole`)."""
        p = Path(path)
        reader = nanogpt_log.LogReader(p)
        try:
            reader.read()
        except OSError as e:
            raise RunLogError(f"{p}: cannot read: {e.strerror or e}") from None
        return cls.from_nanogpt(reader.log(whole), str(p)), reader

    @classmethod
    def from_nanogpt_text(cls, text: str, source: str = "<log>") -> "RunHistory":
        return cls.from_nanogpt(nanogpt_log.parse(text), source)

    @classmethod
    def from_nanogpt(cls, log: nanogpt_log.NanogptLog, source: str) -> "RunHistory":
        config = protocol.clean_config(log.config)
        h = cls(source=source, kind="nanogpt-log", config=config, config_complete=log.config_complete,
                config_text=log.config_text, config_file=log.config_file, config_unknown=log.config_unknown,
                params_reported=log.params, tokens_per_iter_reported=log.tokens_per_iter,
                mfu_peak=log.mfu_peak, mfu_smoothed=True, device=log.device, state=log.state,
                skipped_lines=log.stray, repaired_lines=int(config != log.config), lines=log.lines)
        for e in log.events:
            h.add(e)
        return h


# ---------------------------------------------------------------- any path

def load_run(path: str | Path) -> RunHistory:
    """A run directory, a metrics.jsonl, or a nanoGPT stdout log."""
    return open_run(path)[0]


def open_run(path: str | Path, whole: bool = True) -> tuple[RunHistory, nanogpt_log.LogReader | None]:
    """`load_run`, and a nanoGPT log's reader to read on as the log grows (`whole`: False where a
    train.py may still be writing it, mid-line)."""
    p = Path(path)
    if p.is_dir():
        return RunHistory.from_metrics(p), None
    if not p.exists():
        raise RunLogError(f"{p}: no such run directory or log file")
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise RunLogError(f"{p}: cannot read: {e.strerror or e}") from None
    if p.suffix == ".jsonl" or head.lstrip().startswith(b"{"):
        return RunHistory.from_metrics(p), None
    h, reader = RunHistory.from_nanogpt_log(p, whole)
    # no record, and neither what train.py prints before its first (a config, the parameter count: it
    # may be starting) nor a traceback (it died before its first): not a log
    if not (h.steps or h.evals or h.errors or h.config_complete or h.params_reported or h.tokens_per_iter_reported):
        raise RunLogError(f"{p}: no nanoGPT 'iter N: loss ...' or 'step N: train loss ...' lines "
                          "and not a metrics.jsonl")
    return h, reader
