"""Is an engine running in this run directory? The engine's lock, status file and heartbeat.

An engine holds an exclusive `flock` on RUN_DIR/engine.lock for its whole life, so two engines
never train into one directory; the kernel drops the lock when the process dies, however it
dies. RUN_DIR/engine.json says who holds it (pid, host, start time), what it is doing (state,
iteration, whether a UI is attached) and where its control socket is; a background thread
refreshes its heartbeat every few seconds, off the training loop. `status(run_dir)` combines
the two for UIs and commands: alive (an engine holds the lock), stale (the file says running but
nobody holds the lock: killed -9, out of memory, machine reboot), or none.

Pure Python, no torch: the UI and every command may import it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpttui.fs import atomic, lock
from gpttui.run import layout
from gpttui.run.protocol import MAX_COUNT, MAX_PATH, MAX_TIME

HEARTBEAT_S = 2.0
# flock held by the dashboard connected to the engine (spawned or attached): `status` tells a run
# watched from one trained detached; the kernel drops it when that dashboard dies
UI_LOCK = "ui.lock"
# Only consulted for an engine on another host (a shared file system), where the lock can't be probed.
STALE_AFTER_S = 30.0
# engine.json is padded to this size: on a full disk, where no temporary file can be made, it is
# overwritten in place (no new blocks needed), so its state still says "paused: disk full".
STATUS_BYTES = 1024


class RunLocked(RuntimeError):
    """Another engine holds the run directory; the message says which and how to attach."""


@dataclass
class EngineInfo:
    """The contents of RUN_DIR/engine.json."""

    pid: int
    host: str
    started: float
    heartbeat: float
    state: str = "starting"
    reason: str = ""
    iter: int = 0
    ui: str = "attached"  # "attached" (a UI owns its pipes), "detached" (that UI went away) or "headless"
    socket: str = ""  # the control socket's path ("" until it listens)
    exit_code: int | None = None  # set when the engine exits on its own terms

    @property
    def final(self) -> bool:
        return self.state in layout.FINAL_STATES


@dataclass
class RunStatus:
    kind: Literal["alive", "stale", "none"]
    info: EngineInfo | None

    def describe(self, run_dir: str | Path) -> str:
        """One line for a person: who is running here, or what happened to the last engine."""
        i = self.info
        if self.kind == "alive":
            if i is None:
                return f"an engine is starting in {run_dir}"
            ui = "attached: a dashboard is connected" if ui_attached(run_dir) else (
                "detached: no dashboard is connected" if i.ui in ("attached", "detached") else i.ui)
            return (f"engine pid {i.pid} on {i.host} is {i.state} at iteration {i.iter} in {run_dir} "
                    f"({ui}; heartbeat {_ago(i.heartbeat)})")
        if self.kind == "stale":
            assert i is not None
            return (f"engine pid {i.pid} on {i.host} died while {i.state} at iteration {i.iter} "
                    f"(last heartbeat {_ago(i.heartbeat)}; killed, crashed, out of memory, or the machine restarted)")
        if i is not None:
            how = f" ({i.reason})" if i.reason else ""
            return f"no engine is running in {run_dir}; the last one {i.state}{how} at iteration {i.iter}"
        return f"no engine is running in {run_dir}"


def _ago(t: float) -> str:
    s = max(0.0, time.time() - t)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f} min ago"


def read_info(run_dir: str | Path) -> EngineInfo | None:
    """engine.json, or None if it is missing or unreadable (a half-made directory is not an error)."""
    known = {f.name: str(f.type) for f in dataclasses.fields(EngineInfo)}
    for attempt in range(2):  # a read racing an in-place rewrite (full disk) may see a mix
        try:
            raw = json.loads((Path(run_dir) / layout.ENGINE_STATUS).read_text())
            if not isinstance(raw, dict):
                raise ValueError("engine.json is not an object")
            return EngineInfo(**{k: v for k, v in raw.items() if k in known and _fits(known[k], v)})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, RecursionError):
            if attempt == 0:
                time.sleep(0.01)
    return None


def _fits(kind: str, v: object) -> bool:
    """A value of engine.json (read from disk: anything) holds its field's type, in range; one
    that does not is left out (a required one missing makes the file unreadable: TypeError)."""
    if kind == "str":
        return isinstance(v, str) and len(v) <= MAX_PATH
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < MAX_TIME
    if v is None:
        return kind == "int | None"
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < MAX_COUNT


def ui_attached(run_dir: str | Path) -> bool:
    """True while a dashboard is connected to this run's engine (it holds RUN_DIR/ui.lock)."""
    return lock.is_held(Path(run_dir) / UI_LOCK)


def lock_held(run_dir: str | Path) -> bool:
    """True if some process holds RUN_DIR/engine.lock."""
    return lock.is_held(Path(run_dir) / layout.ENGINE_LOCK)


def status(run_dir: str | Path) -> RunStatus:
    """alive / stale / none, with the engine's last words from engine.json."""
    info = read_info(run_dir)
    if info is not None and info.host != socket.gethostname():
        # The lock lives on this host's kernel; for another host trust the heartbeat.
        if info.final:
            return RunStatus("none", info)
        fresh = time.time() - info.heartbeat < STALE_AFTER_S
        return RunStatus("alive" if fresh else "stale", info)
    if lock_held(run_dir):
        return RunStatus("alive", info)
    if info is None or info.final:
        return RunStatus("none", info)
    return RunStatus("stale", info)


def _status_bytes(obj: dict) -> bytes:
    """engine.json's text padded to STATUS_BYTES, so that it can be rewritten in place."""
    data = (json.dumps(obj, indent=1) + "\n").encode()
    return data + b" " * max(0, STATUS_BYTES - len(data))


class EngineStatus:
    """The engine's side: hold the lock, keep engine.json current, beat the heartbeat.

    `update()` only changes fields in memory and wakes the writer thread, so the training loop
    never waits on the disk; write errors (a full disk) are swallowed: the status file is
    advisory, the lock is what guarantees one engine per directory.
    """

    def __init__(self, run_dir: str | Path, interval: float = HEARTBEAT_S) -> None:
        self.run_dir = Path(run_dir)
        self.interval = interval
        self.info = EngineInfo(pid=os.getpid(), host=socket.gethostname(),
                               started=time.time(), heartbeat=time.time())
        self._lock = lock.FileLock(self.run_dir / layout.ENGINE_LOCK)
        self._mu = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: bytes | None = None  # engine.json as the last engine left it (None: absent)

    def acquire(self, wait: float = 1.0) -> None:
        """Take the exclusive lock or raise RunLocked naming the holder.

        Retries for `wait` seconds: `status()` probes the lock with a brief shared lock.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self._lock.acquire(wait):
            raise RunLocked(locked_message(self.run_dir))
        fd = self._lock.fd
        assert fd is not None
        try:
            self._previous = (self.run_dir / layout.ENGINE_STATUS).read_bytes()
        except OSError:
            self._previous = None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._write()

    def start(self) -> None:
        """Start the heartbeat thread (after acquire)."""
        self._thread = threading.Thread(target=self._run, name="gpttui-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **fields: object) -> None:
        """Change fields of engine.json (state, reason, iter, ui, socket); written off-thread."""
        with self._mu:
            for k, v in fields.items():
                setattr(self.info, k, v)
        if set(fields) != {"iter"}:
            self._wake.set()

    def close(self, state: str | None = None, reason: str = "", exit_code: int | None = None,
              restore: bool = False) -> None:
        """Final status written synchronously, then the lock released. `restore`: this engine's
        start was refused; engine.json goes back to what the last engine left (or away)."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lock.fd is None:
            return
        with self._mu:
            if state is not None:
                self.info.state, self.info.reason = state, reason
            self.info.exit_code = exit_code
        path = self.run_dir / layout.ENGINE_STATUS
        try:
            if not restore:
                self._write()
            elif self._previous is None:
                path.unlink(missing_ok=True)
            else:
                atomic.write_bytes(path, self._previous)
        except OSError:
            pass
        self._lock.release()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                self._write()
            except OSError:
                pass

    def _write(self) -> None:
        """Write engine.json now (fsynced, as every atomic write)."""
        with self._mu:
            self.info.heartbeat = time.time()
            data = _status_bytes(dataclasses.asdict(self.info))
        path = self.run_dir / layout.ENGINE_STATUS
        try:
            atomic.write_bytes(path, data)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _overwrite_in_place(path, data, e)


def _overwrite_in_place(path: Path, data: bytes, why: OSError) -> None:
    """Rewrite a file without allocating (same size or smaller); else re-raise `why`."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if len(data) > os.fstat(fd).st_size:
            raise why
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def record_quit(run_dir: str | Path, reason: str, exit_code: int) -> None:
    """An engine killed on the user's word (a second Ctrl+C) can't say how it ended: its starter
    says it for it, so that engine.json reads "stopped" with `reason`, not a crash, and the dead
    engine's socket is gone. Nothing is written if another engine has taken the run since."""
    held = lock.FileLock(Path(run_dir) / layout.ENGINE_LOCK)
    try:
        if not held.acquire(wait=2.0):
            return
    except OSError:
        return
    try:
        info = read_info(run_dir)
        if info is None or info.final:
            return
        info.state, info.reason, info.exit_code = "stopped", reason, exit_code
        atomic.write_bytes(Path(run_dir) / layout.ENGINE_STATUS, _status_bytes(dataclasses.asdict(info)))
        if info.socket:
            Path(info.socket).unlink(missing_ok=True)
    except OSError:
        pass  # engine.json stays as the engine left it: "died while running"
    finally:
        held.release()


def locked_message(run_dir: str | Path) -> str:
    """Why an engine can't start here, naming the holder and how to reach it."""
    try:
        pid = int((Path(run_dir) / layout.ENGINE_LOCK).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    info = read_info(run_dir)
    if info is not None and pid in (None, info.pid):
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started))
        who = f"engine pid {info.pid} on {info.host} (started {started}, {info.state} at iteration {info.iter})"
    else:
        who = f"engine pid {pid}" if pid else "another engine"
    return (f"{run_dir} is already being trained by {who}; "
            f"attach to it with `gpttui attach {run_dir}` (or stop it there first)")
