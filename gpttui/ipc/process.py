"""The UI side of a child process that speaks the protocol (an engine, a sampler).

`ProtocolProcess` runs any argv whose stdout carries protocol events: stdout and stderr are
read on background threads into the peer's inbox (inbox.py), the UI takes what arrived with
`drain()` on its own timer, and `send()` writes command lines to the child's stdin.
The child gets its own session (Ctrl+C belongs to the UI) and never the terminal's stdin.

No torch, no Textual: the sampler screen and the tests use it as they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Sequence

from gpttui.fs.lock import FileLock
from gpttui.ipc.inbox import MAX_LOG_LINE
from gpttui.ipc.peer import Peer
from gpttui.run import protocol


class ProtocolProcess(Peer):
    """A child process speaking the protocol: events on stdout, commands on stdin."""

    def __init__(self, argv: Sequence[str], *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()) -> None:
        super().__init__()
        self.argv = list(argv)
        self._send_lock = threading.Lock()
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=child_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, pass_fds=tuple(pass_fds),
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
        for line in protocol.bounded_lines(stream):
            try:
                ev = protocol.decode_event(line)
            except protocol.ProtocolError:
                # a stray print() in the child: show it with the log
                self.inbox.put_bad(line[:MAX_LOG_LINE].decode("utf-8", "replace").rstrip("\n"))
                continue
            self.inbox.put_event(ev)
        stream.close()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in protocol.bounded_lines(stream, 4 * MAX_LOG_LINE):
            self.inbox.put_lines([raw.decode("utf-8", "replace").rstrip("\n")])
        stream.close()

    # ------------------------------------------------------------ UI side

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
        """The child exited and every line it wrote has been read into the inbox."""
        return self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)

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

    def __init__(self, run_dir: str | Path, overrides: Sequence[str] = (), lock: FileLock | None = None,
                 **kw: Any) -> None:
        """`lock`, the run's lock held by the caller, is handed to a single engine process, so no
        other start slips in between the caller's checks and the engine (torchrun closes inherited
        descriptors: its rank 0 takes the lock once the caller releases it)."""
        self.run_dir = Path(run_dir)
        if self.runner:
            kw["env"] = torchrun_env(kw.get("env"))
        elif lock is not None:
            kw["env"] = env = dict(os.environ if kw.get("env") is None else kw["env"])
            kw["pass_fds"] = lock.handed_to_child(env)
        super().__init__(engine_argv(run_dir, overrides, self.runner), **kw)

    def detach(self) -> None:
        """Let the engine train on without this UI: at the end of its stdin it checkpoints and
        goes headless (config.on_ui_lost); `gpttui attach RUN_DIR` reconnects."""
        self.close_stdin()
