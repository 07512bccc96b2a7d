"""The UI side of a process that speaks the protocol (an engine, a sampler).

`ProtocolProcess` runs any argv whose stdout carries protocol events: stdout and stderr are
read on background threads into bounded buffers, the UI takes what arrived with `drain()` on
its own timer (never per event), and `send()` writes command lines to the child's stdin.
The child gets its own session (Ctrl+C belongs to the UI) and never the terminal's stdin.

No torch, no Textual: the sampler screen and the tests use it as they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

from gpttui.run import protocol

# Events waiting for the UI beyond this are thinned: step/token/progress events are dropped
# (the full history is in metrics.jsonl); lossless events (eval, state, error ...) never are.
MAX_PENDING = 20_000
STDERR_TAIL = 400  # stderr lines kept for the failure screen


def thin_steps(events: deque[dict[str, Any]]) -> tuple[deque[dict[str, Any]], int]:
    """Every other step-like event dropped (lossless ones all kept), and how many went."""
    kept: deque[dict[str, Any]] = deque()
    odd, dropped = False, 0
    for ev in events:
        if ev["type"] not in protocol.LOSSLESS:
            odd = not odd
            if odd:
                dropped += 1
                continue
        kept.append(ev)
    return kept, dropped


@dataclass
class Drained:
    """What arrived since the last drain."""

    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    dropped: int = 0          # step-like events dropped because the UI fell behind
    bad_lines: int = 0        # stdout lines that were not protocol events


class ProtocolProcess:
    """A child process speaking the protocol: events on stdout, commands on stdin."""

    def __init__(self, argv: Sequence[str], *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque()
        self._stderr_new: list[str] = []
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._dropped = 0
        self._bad = 0
        self._send_lock = threading.Lock()
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=child_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), daemon=True,
                             name=f"events-{self.pid}"),
            threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True,
                             name=f"stderr-{self.pid}"),
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ reader threads

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                ev = protocol.decode_event(line)
            except protocol.ProtocolError:
                with self._lock:
                    self._bad += 1
                    text = line.decode("utf-8", "replace").rstrip("\n")
                    if text:  # a stray print() in the child: show it with the log
                        self._stderr_new.append(text)
                        self._stderr_tail.append(text)
                continue
            with self._lock:
                self._events.append(ev)
                if len(self._events) > MAX_PENDING:
                    self._thin()
        stream.close()

    def _thin(self) -> None:
        """Drop every other step-like event among those waiting (caller holds the lock)."""
        self._events, dropped = thin_steps(self._events)
        self._dropped += dropped

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._stderr_new.append(line)
                self._stderr_tail.append(line)
                if len(self._stderr_new) > STDERR_TAIL:
                    del self._stderr_new[:-STDERR_TAIL]
        stream.close()

    # ------------------------------------------------------------ UI side

    def drain(self) -> Drained:
        """Everything that arrived since the last call (cheap when nothing did)."""
        with self._lock:
            out = Drained(list(self._events), self._stderr_new, self._dropped, self._bad)
            self._events.clear()
            self._stderr_new = []
            self._dropped = self._bad = 0
        return out

    def send(self, cmd: str, **values: Any) -> bool:
        """Write one command line; False if the child is gone or its stdin is closed."""
        line = protocol.command(cmd, **values).encode()
        with self._send_lock:
            stdin = self.proc.stdin
            if stdin is None or stdin.closed or self.proc.poll() is not None:
                return False
            try:
                stdin.write(line)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def close_stdin(self) -> None:
        with self._send_lock:
            if self.proc.stdin and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass

    @property
    def returncode(self) -> int | None:
        """None while the child runs."""
        return self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def finished_reading(self) -> bool:
        """The child exited and every line it wrote has been read into the buffers."""
        return self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)

    def stderr_tail(self, n: int = 40) -> list[str]:
        with self._lock:
            return list(self._stderr_tail)[-n:]

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Signal the child's whole process group (torchrun's workers too)."""
        if self.alive:
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def terminate(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.wait(5.0)
        return code


def engine_argv(run_dir: str | Path, overrides: Sequence[str] = (), runner: Sequence[str] = ()) -> list[str]:
    """The command line of the training engine on RUN_DIR. `runner`: torchrun's flags
    (`--standalone --nproc_per_node=2`): the engine then runs as a job of several processes,
    of which rank 0 alone speaks the protocol."""
    launcher = ["-m", "torch.distributed.run", *runner] if runner else []
    return [sys.executable, *launcher, "-m", "gpttui.engine", str(run_dir), *overrides]


def torchrun_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an engine run by torchrun. torchrun sets OMP_NUM_THREADS=1 for several
    processes per machine and prints a banner saying so; setting it first spares the user the
    banner (the engine sets its own thread count either way)."""
    return {"OMP_NUM_THREADS": "1", **(os.environ if env is None else env)}


class EngineClient(ProtocolProcess):
    """The training engine on a run directory."""

    # torchrun's flags for every engine this process starts: `gpttui launch --nproc_per_node=N`
    # sets them once, so a restart or resume from the dashboard keeps the job's size
    runner: Sequence[str] = ()

    def __init__(self, run_dir: str | Path, overrides: Sequence[str] = (), **kw: Any) -> None:
        self.run_dir = Path(run_dir)
        if self.runner:
            kw["env"] = torchrun_env(kw.get("env"))
        super().__init__(engine_argv(run_dir, overrides, self.runner), **kw)

    def detach(self) -> None:
        """Let the engine train on without this UI: at the end of its stdin it checkpoints and
        goes headless (config.on_ui_lost); `gpttui attach RUN_DIR` reconnects."""
        self.close_stdin()
