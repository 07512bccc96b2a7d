"""The run mirrored to W&B (`wandb_log = True`) and TensorBoard (`tensorboard_log = True`), from
the engine's event stream, off the training loop.

A Channel listener puts each event in a bounded queue and returns at once; one daemon thread
feeds the sinks. When the queue is full, step events are dropped (counted) and the others
(hello, eval, checkpoint) still go in, so a slow or failing network never delays an iteration.
A sink that cannot start (package missing, login refused) or fails later is said once as a
one-line note and switched off; training goes on. What W&B gets is nanoGPT's: iter, train/loss,
val/loss, lr, mfu (a percentage, nanoGPT's running average) at each eval; gpttui adds the step
figures (step/loss, step/lr, step/dt_ms, step/tokens_per_s, step/mfu in percent) every
log_interval iterations. W&B writes under RUN_DIR/wandb/.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from gpttui.analysis import tensorboard_export
from gpttui.engine.channel import Channel
from gpttui.run import config as C

TENSORBOARD_DIR = "tensorboard"   # RUN_DIR/tensorboard: the live event files
MAX_QUEUED_STEPS = 1000
FLUSH_STEPS = 50                  # TensorBoard's live file: flushed at least this often (in steps)
CLOSE_TIMEOUT_S = 60.0            # at the end of a run: how long W&B may take to finish
STEP_FIGURES = ("loss", "lr", "dt_ms", "tokens_per_s", "mfu")


class MirrorError(RuntimeError):
    """A sink that cannot start, already phrased for the user."""


class Sink:
    name = "sink"

    def handle(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TensorBoardSink(Sink):
    """Appends to one event file of RUN_DIR/tensorboard, flushed at every eval and every
    FLUSH_STEPS steps (TensorBoard reads a file as it grows)."""

    name = "TensorBoard"

    def __init__(self, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.file = open(logdir / tensorboard_export.event_file_name(), "ab")
        self.writer = tensorboard_export.EventWriter(self.file)
        self.unflushed = 0

    def handle(self, event: dict[str, Any]) -> None:
        if event.get("type") == "hello" and isinstance(event.get("start_iter"), int):
            self.writer.start_session(event["start_iter"])
        self.unflushed += self.writer.add(event) > 0
        if self.unflushed and (event.get("type") == "eval" or self.unflushed >= FLUSH_STEPS):
            self.file.flush()
            self.unflushed = 0

    def close(self) -> None:
        self.file.close()


class WandbSink(Sink):
    """nanoGPT's wandb.log calls, made from the events. wandb.init runs here, on the mirror's
    thread, so a login or a slow network holds up only the mirror."""

    name = "W&B"

    def __init__(self, cfg: C.TrainConfig, run_dir: Path) -> None:
        try:
            import wandb
        except ImportError:
            raise MirrorError("wandb_log = True but the wandb package is not installed: "
                              "pip install 'gpttui[wandb]'") from None
        os.environ.setdefault("WANDB_SILENT", "true")   # stdout is the event stream: nothing of W&B's there
        self.log_interval = max(1, cfg.log_interval)
        self.lr: float | None = None
        self.running_mfu = -1.0
        try:
            self.run = wandb.init(project=cfg.wandb_project, name=cfg.wandb_run_name, config=cfg.to_dict(),
                                  dir=str(run_dir), settings=wandb.Settings(console="off", silent=True))
        except Exception as e:  # no API key, a refused login, no network
            detail = _one_line(e)
            raise MirrorError(f"W&B did not start ({detail.replace(': <no message>', ': no answer')}); "
                              f"`wandb login`, or WANDB_MODE=offline to keep a local copy to sync later") from None

    def handle(self, event: dict[str, Any]) -> None:
        kind, it = event.get("type"), event.get("iter")
        if not isinstance(it, int):
            return
        if kind == "step":
            self.lr = event.get("lr", self.lr)
            mfu = event.get("mfu")
            if isinstance(mfu, (int, float)):   # nanoGPT's running average
                self.running_mfu = mfu if self.running_mfu < 0 else 0.9 * self.running_mfu + 0.1 * mfu
            if it % self.log_interval == 0:
                figures = {f"step/{k}": event[k] * (100 if k == "mfu" else 1) for k in STEP_FIGURES
                           if isinstance(event.get(k), (int, float))}
                self.run.log({"iter": it, **figures}, step=it)
        elif kind == "config" and isinstance(event.get("changes"), dict):  # a live `set`
            interval = event["changes"].get("log_interval")
            self.log_interval = max(1, interval) if isinstance(interval, int) else self.log_interval
        elif kind == "eval":
            row = {"iter": it, "train/loss": event.get("train_loss"), "val/loss": event.get("val_loss"),
                   "lr": self.lr, "mfu": self.running_mfu * 100 if self.running_mfu >= 0 else None}
            self.run.log({k: v for k, v in row.items() if v is not None}, step=it)

    def close(self) -> None:
        self.run.finish()


class Mirror:
    """Feeds a run's events to sinks on its own thread (see the module's docstring)."""

    def __init__(self, factories: list[Callable[[], Sink]], note: Callable[[str], None]) -> None:
        self.factories = factories
        self.note = note
        self.events: deque[dict[str, Any]] = deque()
        self.steps_queued = 0
        self.dropped = 0
        self.cond = threading.Condition()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="mirror", daemon=True)
        self.thread.start()

    def listener(self, event: dict[str, Any], line: str) -> None:
        """Channel listener: never blocks, never raises."""
        with self.cond:
            if self.closing:
                return
            if event.get("type") == "step":
                if self.steps_queued >= MAX_QUEUED_STEPS:
                    self.dropped += 1
                    return
                self.steps_queued += 1
            self.events.append(event)
            self.cond.notify()

    def _run(self) -> None:
        sinks: list[Sink] = []
        for make in self.factories:
            try:
                sinks.append(make())
            except Exception as e:  # a missing package, a refused login, an unwritable directory
                self.note(f"warning: not mirroring the run: {_one_line(e)}")
        while True:
            with self.cond:
                while not self.events and not self.closing:
                    self.cond.wait()
                if not self.events:
                    break
                event = self.events.popleft()
                self.steps_queued -= event.get("type") == "step"
            for sink in list(sinks):
                try:
                    sink.handle(event)
                except Exception as e:
                    self.note(f"warning: {sink.name} mirror stopped: {_one_line(e)}")
                    sinks.remove(sink)
        for sink in sinks:
            try:
                sink.close()
            except Exception as e:
                self.note(f"warning: {sink.name} mirror did not finish cleanly: {_one_line(e)}")

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Hand over what is queued and let the sinks finish, for at most `timeout` seconds."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.thread.join(timeout)


def _one_line(e: BaseException) -> str:
    if isinstance(e, MirrorError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def attach(cfg: C.TrainConfig, run_dir: Path, chan: Channel, note: Callable[[str], None]) -> Mirror | None:
    """A mirror of `chan`'s events for what the config asks (None when it asks for none)."""
    factories: list[Callable[[], Sink]] = []
    if cfg.tensorboard_log:
        factories.append(lambda: TensorBoardSink(run_dir / TENSORBOARD_DIR))
    if cfg.wandb_log:
        factories.append(lambda: WandbSink(cfg, run_dir))
    if not factories:
        return None
    mirror = Mirror(factories, note)
    chan.listeners.append(mirror.listener)
    return mirror
