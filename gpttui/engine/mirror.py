"""The run mirrored to W&B (`wandb_log = True`) and TensorBoard (`tensorboard_log = True`), from
the engine's event stream, off the training loop.

A Channel listener puts each event in a bounded queue per sink and returns at once; a daemon
thread per sink feeds it. When a queue is full, step events are dropped (counted) and the others
(hello, eval, checkpoint) still go in, so a slow or failing network never delays an iteration.
W&B itself runs in a side process (`python -m gpttui.engine.mirror`), so that a login or an
upload that hangs can be cut off when the run ends instead of holding the engine's exit.
A sink that cannot start (package missing, login refused) or fails later is said once as a
one-line note and switched off; training goes on. At the end of the run a sink gets a bounded
time to finish (a login still hanging gets a few seconds), then is stopped.
What W&B gets is nanoGPT's: iter, train/loss, val/loss, lr, mfu (a percentage, nanoGPT's
running average) at each eval; gpttui adds the step figures (step/loss, step/lr, step/dt_ms,
step/tokens_per_s, step/mfu in percent) every log_interval iterations. W&B writes under
RUN_DIR/wandb/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from gpttui.analysis import tensorboard_export
from gpttui.engine.channel import Channel
from gpttui.run import config as C

TENSORBOARD_DIR = "tensorboard"   # RUN_DIR/tensorboard: the live event files
MAX_QUEUED_STEPS = 1000
FLUSH_STEPS = 50                  # TensorBoard's live file: flushed at least this often (in steps)
CLOSE_TIMEOUT_S = 30.0            # at the end of a run: how long a running sink may take to finish
STARTUP_GRACE_S = 5.0             # ... and one still starting (a W&B login that hangs)
STEP_FIGURES = ("loss", "lr", "dt_ms", "tokens_per_s", "mfu")
WANDB_MISSING = "wandb_log = True but the wandb package is not installed: pip install 'gpttui[wandb]'"


class MirrorError(RuntimeError):
    """A sink that cannot start, already phrased for the user."""


class Sink:
    name = "sink"

    def handle(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def kill(self) -> None:
        """Stop at once (close took too long); what runs elsewhere is ended."""


class Notes:
    """The engine's note, until the mirror is closed (the run's log closes after it): a late
    reply from W&B is then dropped, never written to a closed file."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self._note = note
        self._lock = threading.Lock()
        self.open = True

    def __call__(self, message: str) -> None:
        with self._lock:
            if self.open:
                self._note(message)

    def close(self) -> None:
        with self._lock:
            self.open = False


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


class WandbLogger:
    """nanoGPT's wandb.log calls, made from the events (in the W&B side process)."""

    def __init__(self, init: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise MirrorError(WANDB_MISSING) from None

        self.log_interval = max(1, int(init.get("log_interval", 1)))
        self.lr: float | None = None
        self.running_mfu = -1.0
        try:
            self.run = wandb.init(project=init["project"], name=init["name"], config=init["config"],
                                  dir=init["dir"], settings=wandb.Settings(console="off", silent=True))
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

    def finish(self) -> None:
        self.run.finish()


class WandbSink(Sink):
    """W&B in a side process (`python -m gpttui.engine.mirror`, its own session): a login or an
    upload that hangs, even W&B's own exit handlers, can then be cut off at the end of the run;
    in this process they could hold the engine's exit for minutes. Events go to it as JSON
    lines; it answers `ready` once logged in, or one `warning: ...` line. Until it is ready,
    events wait here (bounded), so a pipe to a process stuck in its login never fills."""

    name = "W&B"

    def __init__(self, cfg: C.TrainConfig, run_dir: Path, note: Notes) -> None:
        if importlib.util.find_spec("wandb") is None:
            raise MirrorError(WANDB_MISSING)
        self.note = note
        self.ready = threading.Event()
        self.waiting: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED_STEPS)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpttui.engine.mirror"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, "WANDB_SILENT": "true"})
        threading.Thread(target=self._relay, name="mirror W&B replies", daemon=True).start()
        self._send({"project": cfg.wandb_project, "name": cfg.wandb_run_name, "config": cfg.to_dict(),
                    "dir": str(run_dir), "log_interval": cfg.log_interval})

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line == "ready":
                self.ready.set()
            elif line.startswith("warning: "):
                self.note(line)

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise MirrorError("the W&B process ended") from None

    def handle(self, event: dict[str, Any]) -> None:
        if not self.ready.is_set():
            self.waiting.append(event)
            return
        while self.waiting:
            self._send(self.waiting.popleft())
        self._send(event)

    def close(self) -> None:
        """Let it finish (W&B uploads what is left): CLOSE_TIMEOUT_S once logged in, STARTUP_GRACE_S
        while still logging in; then it is stopped."""
        deadline = time.monotonic() + STARTUP_GRACE_S
        while not self.ready.wait(0.1) and self.proc.poll() is None and time.monotonic() < deadline:
            pass
        if self.ready.is_set() and self.proc.poll() is None:
            try:
                while self.waiting:
                    self._send(self.waiting.popleft())
            except MirrorError:
                pass
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.proc.wait(CLOSE_TIMEOUT_S if self.ready.is_set() else 0)
        except subprocess.TimeoutExpired:
            self.kill()
            what = "finished" if self.ready.is_set() else "started"
            self.note(f"warning: W&B had not {what} when the run ended; stopped it (what it kept is in its wandb/ directory)")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


def wandb_process() -> int:
    """The W&B side process: the first stdin line says what to init, the others are events."""
    try:
        logger = WandbLogger(json.loads(sys.stdin.readline()))
    except Exception as e:
        print(f"warning: not mirroring the run: {_one_line(e)}", flush=True)
        return 1
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            logger.handle(json.loads(line))
        except Exception as e:
            print(f"warning: W&B mirror stopped: {_one_line(e)}", flush=True)
            return 1
    logger.finish()
    return 0


class Feed:
    """One sink on its own daemon thread, fed through a bounded queue (see the module's docstring);
    a W&B that hangs in its login never holds up TensorBoard, nor training."""

    def __init__(self, name: str, make: Callable[[], Sink], note: Callable[[str], None]) -> None:
        self.name, self.make, self._note = name, make, note
        self.sink: Sink | None = None
        self.events: deque[dict[str, Any]] = deque()
        self.steps_queued = 0
        self.dropped = 0
        self.started = False       # the sink is made (W&B: logged in)
        self.abandoned = False     # close gave up on it: it says nothing more
        self.cond = threading.Condition()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name=f"mirror {name}", daemon=True)
        self.thread.start()

    def put(self, event: dict[str, Any]) -> None:
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

    def note(self, message: str) -> None:
        with self.cond:
            if self.abandoned:
                return
        self._note(message)

    def _run(self) -> None:
        try:
            sink = self.sink = self.make()
        except Exception as e:  # a missing package, a refused login, an unwritable directory
            self.note(f"warning: not mirroring the run: {_one_line(e)}")
            return
        self.started = True
        while True:
            with self.cond:
                while not self.events and not self.closing:
                    self.cond.wait()
                if not self.events:
                    break
                event = self.events.popleft()
                self.steps_queued -= event.get("type") == "step"
            try:
                sink.handle(event)
            except Exception as e:
                self.note(f"warning: {self.name} mirror stopped: {_one_line(e)}")
                return
        try:
            sink.close()
        except Exception as e:
            self.note(f"warning: {self.name} mirror did not finish cleanly: {_one_line(e)}")

    def close(self, timeout: float, startup_grace: float) -> None:
        """Hand over what is queued and let the sink finish: `timeout` seconds once it runs,
        `startup_grace` while it is still starting (a login that hangs is not waited out)."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        deadline = time.monotonic() + startup_grace
        while self.thread.is_alive() and not self.started and time.monotonic() < deadline:
            self.thread.join(0.1)
        if self.started:
            self.thread.join(timeout)
        if self.thread.is_alive():
            with self.cond:
                self.abandoned = True
            if self.sink is not None:
                self.sink.kill()
            what = "finished" if self.started else "started"
            self._note(f"warning: {self.name} had not {what} when the run ended; not waiting for it")


class Mirror:
    """The run's events to every sink the config asks for, each on its own Feed."""

    def __init__(self, factories: list[tuple[str, Callable[[], Sink]]], note: Callable[[str], None]) -> None:
        self.notes = note if isinstance(note, Notes) else Notes(note)
        self.feeds = [Feed(name, make, self.notes) for name, make in factories]

    @property
    def dropped(self) -> int:
        return sum(f.dropped for f in self.feeds)

    def listener(self, event: dict[str, Any], line: str) -> None:
        """Channel listener: never blocks, never raises."""
        for feed in self.feeds:
            feed.put(event)

    def close(self, timeout: float = CLOSE_TIMEOUT_S + STARTUP_GRACE_S + 5, startup_grace: float = STARTUP_GRACE_S) -> None:
        """Let every sink finish (a sink bounds its own wait; `timeout` is the backstop), then
        drop whatever they might still say."""
        for feed in self.feeds:
            feed.close(timeout, startup_grace)
        self.notes.close()


def _one_line(e: BaseException) -> str:
    if isinstance(e, MirrorError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def attach(cfg: C.TrainConfig, run_dir: Path, chan: Channel, note: Callable[[str], None]) -> Mirror | None:
    """A mirror of `chan`'s events for what the config asks (None when it asks for none)."""
    notes = Notes(note)
    factories: list[tuple[str, Callable[[], Sink]]] = []
    if cfg.tensorboard_log:
        factories.append((TensorBoardSink.name, lambda: TensorBoardSink(run_dir / TENSORBOARD_DIR)))
    if cfg.wandb_log:
        factories.append((WandbSink.name, lambda: WandbSink(cfg, run_dir, notes)))
    if not factories:
        return None
    mirror = Mirror(factories, notes)
    chan.listeners.append(mirror.listener)
    return mirror


if __name__ == "__main__":
    sys.exit(wandb_process())
