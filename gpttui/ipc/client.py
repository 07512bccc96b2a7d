"""The UI's side of the engine's control socket (server.py): `SocketClient`.

A `Peer` like process.py's `ProtocolProcess` (drain, send, alive, returncode, stderr_tail, signal,
terminate), over the socket, so the dashboard drives an engine it spawned and one it attached to
alike. Its "stderr" is the tail of RUN_DIR/engine.log. Given `history_from` (a byte offset into
metrics.jsonl, e.g. where the UI's history read ended) it first delivers the events written
since then, and drops the live copies of those: the seam between history and live events has no
gap and no duplicate.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpttui.ipc.inbox import STDERR_TAIL
from gpttui.ipc.peer import Peer
from gpttui.ipc.server import GREETING, socket_path
from gpttui.run import engine_state, layout, protocol

SEAM_LINES = 10_000  # history lines checked against live ones when attaching
LOG_CHUNK = 1 << 20  # bytes of engine.log read at a time


class NotRunning(RuntimeError):
    """No engine listens on this run directory; the message says what to do instead."""


def not_running_message(run_dir: str | Path) -> str:
    st = engine_state.status(run_dir)
    return (f"{st.describe(run_dir)}; resume it with `gpttui launch {run_dir}`"
            if st.kind != "alive" else st.describe(run_dir))


@dataclass
class _Exit:
    code: int | None
    described: str


class SocketClient(Peer):
    """A running engine reached through its control socket."""

    def __init__(self, run_dir: str | Path, *, history_from: int | None = None,
                 connect_timeout: float = 3.0) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        st = engine_state.status(self.run_dir)
        if st.kind != "alive":
            raise NotRunning(not_running_message(self.run_dir))
        path = st.info.socket if st.info and st.info.socket else str(socket_path(self.run_dir))
        self.pid = st.info.pid if st.info else 0
        self.sock = self._connect(path, connect_timeout)
        self._stream = self.sock.makefile("rb")
        self._await_greeting(connect_timeout)
        self._lock = threading.Lock()  # guards _exit
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self._exit: _Exit | None = None
        self._log_pos = self._log_start()
        self._seam: set[bytes] = set()  # history lines that may also arrive live
        if history_from is not None:
            self._catch_up(history_from)
        self._threads = [
            threading.Thread(target=self._read_socket, daemon=True, name=f"attach-{self.pid}"),
            threading.Thread(target=self._tail_log, daemon=True, name=f"engine-log-{self.pid}"),
        ]
        for t in self._threads:
            t.start()

    def _connect(self, path: str, timeout: float) -> socket.socket:
        """Connect within `timeout` seconds, retrying what passes: a refused connect (the engine
        holds the lock but does not listen yet) or a full listen backlog (EAGAIN: many UIs
        attaching at once), with short, growing waits."""
        deadline = time.monotonic() + timeout
        wait = 0.01
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                sock.connect(path)
                sock.settimeout(None)
                return sock
            except OSError as e:
                sock.close()
                if time.monotonic() >= deadline or engine_state.status(self.run_dir).kind != "alive":
                    why = e.strerror or str(e) or "timed out"
                    raise NotRunning(f"cannot reach the engine on {self.run_dir} at {path}: "
                                     f"{why}; {not_running_message(self.run_dir)}") from None
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                wait = min(wait * 2, 0.2)

    def _await_greeting(self, timeout: float) -> None:
        """Wait until the server has registered us (its first line), so that the history read
        from metrics.jsonl after this and the live events meet without a gap."""
        self.sock.settimeout(timeout)
        try:
            first = self._stream.readline()
        except OSError:
            first = b""
        finally:
            self.sock.settimeout(None)
        if GREETING.encode() not in first:
            self._stream.close()
            self.sock.close()
            raise NotRunning(f"the engine on {self.run_dir} did not answer on its control socket; "
                             f"{not_running_message(self.run_dir)}")

    def _log_start(self) -> int:
        """Start the engine.log tail at about its last STDERR_TAIL lines."""
        log = self.run_dir / layout.ENGINE_LOG
        try:
            size = log.stat().st_size
            with open(log, "rb") as f:
                f.seek(max(0, size - 32768))
                chunk = f.read()
        except OSError:
            return 0
        lines = chunk.split(b"\n")[:-1]
        if size > 32768 and lines:
            lines = lines[1:]  # probably cut in the middle
        recent = [raw.decode("utf-8", "replace") for raw in lines[-STDERR_TAIL:]]
        self.inbox.put_lines(recent, show=50)  # the log panel opens on the engine's recent lines
        return size

    def _catch_up(self, offset: int) -> None:
        """Queue the events metrics.jsonl got since `offset` (read after connecting, so every
        event is either in them or still to come on the socket; the live copies are dropped)."""
        try:
            with open(self.run_dir / layout.METRICS, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return
        raws = data[:data.rfind(b"\n") + 1].splitlines()
        for raw in raws:
            try:
                self.inbox.put_event(protocol.decode_event(raw))
            except protocol.ProtocolError:
                self.inbox.put_bad()
        # Only the newest lines can still be on their way through the socket.
        self._seam = {raw.strip() for raw in raws[-SEAM_LINES:]}

    # ------------------------------------------------------------ reader threads

    def _read_socket(self) -> None:
        with self._stream as stream:
            try:
                for line in protocol.bounded_lines(stream):
                    if self._seam and line.strip() in self._seam:
                        self._seam.discard(line.strip())
                        continue
                    try:
                        ev = protocol.decode_event(line)
                    except protocol.ProtocolError:
                        self.inbox.put_bad()
                        continue
                    self.inbox.put_event(ev)
            except OSError:
                pass
        self._on_disconnect()

    def _on_disconnect(self) -> None:
        """The socket closed: the engine exited (or we closed). Find out how it ended."""
        if self._closed.is_set():
            return
        deadline = time.monotonic() + 3.0
        st = engine_state.status(self.run_dir)
        while st.kind == "alive" and time.monotonic() < deadline:
            time.sleep(0.1)  # an exiting engine closes the socket just before the lock
            st = engine_state.status(self.run_dir)
        self._read_log()
        info = st.info
        if st.kind == "alive":
            exit_ = _Exit(None, "lost the connection to the engine (it dropped this client; attach again)")
        elif info is not None and info.pid == self.pid and info.final:
            exit_ = _Exit(info.exit_code if info.exit_code is not None else 0,
                          f"engine {info.state}" + (f" ({info.reason})" if info.reason else ""))
        else:
            exit_ = _Exit(-signal.SIGKILL, f"engine pid {self.pid} died without recording why: killed "
                          "(kill -9, out of memory) or a crash in native code; see its log")
        with self._lock:
            self._exit = exit_

    def _tail_log(self) -> None:
        while not self._closed.is_set() and self._exit is None:
            self._read_log()
            self._closed.wait(0.5)

    def _read_log(self) -> None:
        try:
            with open(self.run_dir / layout.ENGINE_LOG, "rb") as f:
                f.seek(self._log_pos)
                chunk = f.read(LOG_CHUNK)
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        if not end:
            if len(chunk) < LOG_CHUNK:
                return  # a line still being written
            end = len(chunk)  # a line longer than a chunk: taken in pieces (the inbox cuts them)
        self._log_pos += end
        pieces = chunk[:end].split(b"\n")
        if chunk[end - 1:end] == b"\n":
            pieces.pop()
        self.inbox.put_lines([raw.decode("utf-8", "replace") for raw in pieces])

    # ------------------------------------------------------------ UI side

    def send(self, cmd: str, **values: Any) -> bool:
        return self.send_line(protocol.command(cmd, **values))

    def send_line(self, line: str) -> bool:
        """Write one raw line; False if the engine is gone."""
        with self._send_lock:
            if self._closed.is_set() or self._exit is not None:
                return False
            try:
                self.sock.sendall(line.encode())
            except OSError:
                return False
        return True

    @property
    def returncode(self) -> int | None:
        """None while connected; the recorded exit code, or -9 if the engine died without one."""
        with self._lock:
            return None if self._exit is None else self._exit.code

    @property
    def exit_description(self) -> str:
        with self._lock:
            return "" if self._exit is None else self._exit.described

    @property
    def alive(self) -> bool:
        return self.returncode is None and not self._closed.is_set()

    @property
    def finished_reading(self) -> bool:
        return self._exit is not None and not self._threads[0].is_alive()

    def wait(self, timeout: float | None = None) -> int | None:
        self._threads[0].join(timeout)
        return self.returncode

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.alive and self.pid:
            try:
                os.kill(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def detach(self) -> None:
        """Leave the engine training on; only this connection closes."""
        self.close()

    close_stdin = detach

    def close(self) -> None:
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

