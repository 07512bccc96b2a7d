"""The engine's local control socket, RUN_DIR/engine.sock: UIs attach, detach and re-attach.

Engine side, `ControlServer`: one background thread (selectors, non-blocking sockets) accepts
clients, streams each of them every event the engine publishes and takes protocol commands from
them. `publish()` is what the training loop pays: a dict lookup and, per client, an append to a
queue under a lock; it never blocks on a socket. Per client:
  - lossless events (eval, checkpoint, state, error, ...) are queued and never dropped;
  - once a client is COALESCE_AFTER bytes behind, a step-like event (step, progress, token)
    replaces the newest one of its type still waiting for it (coalesced): a slow client sees
    fewer steps, never old ones, while a client that keeps up gets every one;
  - a client whose backlog passes `max_backlog` bytes (frozen, not reading) is disconnected:
    the engine's memory stays bounded, and everything is in metrics.jsonl for when it returns.
Bad command lines are answered to their sender with an error event and otherwise ignored.
A new client's first line is a `log` event, "attached ...", sent once the server has registered
it: every event published after that line reaches the client, and every earlier one is already
in metrics.jsonl (the channel writes the file before publishing).

UI side, `SocketClient`: the face of `gpttui.ipc.process.ProtocolProcess` (drain, send, alive,
returncode, stderr_tail, signal, terminate) over the socket, so the dashboard drives an engine it
spawned and one it attached to alike. Its "stderr" is the tail of RUN_DIR/engine.log. Given
`history_from` (a byte offset into metrics.jsonl, e.g. where the UI's history read ended) it
first delivers the events written since then, and drops the live copies of those: the seam
between history and live events has no gap and no duplicate.

The socket is created owner-only (0600). Linux limits socket paths to 107 bytes, so a run
directory with a long path gets its socket in a private 0700 directory under the temp dir; the
real path is recorded in engine.json either way. No torch here.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gpttui.ipc.process import MAX_PENDING, STDERR_TAIL, Drained, thin_steps
from gpttui.run import engine_state, layout, protocol

GREETING = "attached to the engine's control socket"
MAX_BACKLOG = 8 << 20  # bytes a client may fall behind before it is disconnected
COALESCE_AFTER = 64 << 10  # a client this far behind gets only the newest step-like events
MAX_LINE = 64 << 10  # longest command line accepted
CHUNK = 64 << 10  # bytes moved from a client's queue to its socket at a time
BATCH_S = 0.005  # the I/O thread wakes at most every 5 ms while events stream
SEAM_LINES = 10_000  # history lines checked against live ones when attaching
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS


class NotRunning(RuntimeError):
    """No engine listens on this run directory; the message says what to do instead."""


def socket_path(run_dir: str | Path) -> Path:
    """Where the engine on `run_dir` listens: RUN_DIR/engine.sock unless that path is too long."""
    p = Path(run_dir).resolve() / layout.ENGINE_SOCKET
    if len(os.fsencode(p)) < _SUN_PATH_MAX:
        return p
    d = Path(tempfile.gettempdir()) / f"gpttui-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{d} must belong to you with mode 0700 to hold control sockets")
    return d / (hashlib.sha256(os.fsencode(p)).hexdigest()[:20] + ".sock")


# ---------------------------------------------------------------- engine side

class _Item:
    __slots__ = ("type", "data")

    def __init__(self, type_: str, data: bytes) -> None:
        self.type, self.data = type_, data


class _Conn:
    """One attached client: its queue, the bytes being written, the command bytes being read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: deque[_Item] = deque()
        self.pending_bytes = 0
        self.coalesce: dict[str, _Item] = {}  # step-like items still queued after the last lossless one
        self.out = b""
        self.inbuf = bytearray()
        self.skipping = False  # discarding the rest of an over-long command line
        self.overflow = False
        self.want_write = False

    def enqueue(self, type_: str, data: bytes, max_backlog: int) -> bool:
        """Queue one event line; True if the client had nothing queued (the writer must wake)."""
        was_idle = not self.pending and not self.out
        if type_ in protocol.LOSSLESS:
            self.coalesce.clear()
        elif self.pending_bytes >= COALESCE_AFTER:
            old = self.coalesce.get(type_)
            if old is not None:
                self.pending_bytes += len(data) - len(old.data)
                old.data = data
                return False
        item = _Item(type_, data)
        if type_ not in protocol.LOSSLESS:
            self.coalesce[type_] = item
        self.pending.append(item)
        self.pending_bytes += len(data)
        if self.pending_bytes > max_backlog:
            self.overflow = True
        return was_idle

    def take(self, limit: int) -> bytes:
        """Up to about `limit` bytes of queued lines (whole lines only)."""
        parts: list[bytes] = []
        n = 0
        while self.pending and n < limit:
            item = self.pending.popleft()
            if self.coalesce.get(item.type) is item:
                del self.coalesce[item.type]
            parts.append(item.data)
            n += len(item.data)
        self.pending_bytes -= n
        return b"".join(parts)


class ControlServer:
    """Serve the engine's events and take its commands on a Unix socket."""

    def __init__(self, path: str | Path, on_command: Callable[[protocol.Command], None], *,
                 max_backlog: int = MAX_BACKLOG) -> None:
        self.path = Path(path)
        self.on_command = on_command
        self.max_backlog = max_backlog
        self._mu = threading.Lock()
        self._conns: list[_Conn] = []
        self._iter = 0
        self._wake_pending = False
        self._closed = False
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._inode = 0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread: threading.Thread | None = None
        self.disconnected_slow = 0  # clients dropped for falling too far behind

    def start(self) -> None:
        """Bind (owner-only), listen and start the I/O thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.unlink()  # left by an engine that was killed; the run lock says it is ours now
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        sock.listen(8)
        sock.setblocking(False)
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name="gpttui-control", daemon=True)
        self._thread.start()

    @property
    def client_count(self) -> int:
        with self._mu:
            return len(self._conns)

    def publish(self, ev: dict[str, Any], line: str) -> None:
        """Send one event (as the engine encoded it) to every client. Never blocks on I/O."""
        type_ = ev.get("type", "")
        with self._mu:
            self._iter = ev.get("iter", self._iter)
            if not self._conns:
                return
            data = line.encode()
            wake = False
            for c in self._conns:
                wake |= c.enqueue(type_, data, self.max_backlog) or c.overflow  # drop it now
            if wake:
                self._wake_locked()

    def close(self) -> None:
        """Flush what clients can take within a moment, then close everything and unlink the socket."""
        if self._closed:
            return
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with self._mu:
                busy = any((c.pending or c.out) and not c.overflow for c in self._conns)
            if not busy:
                break
            time.sleep(0.01)
        self._closed = True
        with self._mu:
            self._wake_locked()
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            if os.stat(self.path).st_ino == self._inode:  # not a newer engine's socket
                self.path.unlink()
        except OSError:
            pass

    # ------------------------------------------------------------ I/O thread

    def _wake_locked(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass

    def _loop(self) -> None:
        try:
            while not self._closed:
                for key, mask in self._sel.select(timeout=1.0):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            pass
                        # Let a burst of events gather: one pass per few ms, not one per event.
                        time.sleep(BATCH_S)
                        with self._mu:
                            self._wake_pending = False
                    else:
                        conn: _Conn = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(conn)
                        if mask & selectors.EVENT_WRITE:
                            self._flush(conn)
                with self._mu:
                    conns = list(self._conns)
                for c in conns:
                    self._flush(c)
        finally:
            with self._mu:
                conns, self._conns = self._conns, []
            for c in conns:
                self._drop(c, registered=True)
            self._sel.close()
            if self._listener is not None:
                self._listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            with self._mu:
                self._conns.append(conn)
                hi = protocol.event("log", self._iter, message=f"{GREETING} (engine pid {os.getpid()})")
                conn.enqueue("log", protocol.encode(hi).encode(), self.max_backlog)
                self._wake_locked()
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, c: _Conn, registered: bool = True) -> None:
        if registered:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        try:
            c.sock.close()
        except OSError:
            pass

    def _remove(self, c: _Conn) -> None:
        with self._mu:
            if c not in self._conns:
                return
            self._conns.remove(c)
        self._drop(c)

    def _flush(self, c: _Conn) -> None:
        """Write what the socket takes without blocking; watch for writability if more is left."""
        while True:
            with self._mu:  # also while its socket is full: a frozen client never empties c.out
                overflow = c.overflow and c in self._conns
                if overflow:
                    self.disconnected_slow += 1
                elif not c.out:
                    c.out = c.take(CHUNK)
            if overflow:
                self._remove(c)
                return
            if not c.out:
                break
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._remove(c)
                return
            c.out = c.out[n:]
        want = bool(c.out)
        if want != c.want_write:
            c.want_write = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            try:
                self._sel.modify(c.sock, events, c)
            except (KeyError, ValueError):
                pass

    def _read(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._remove(c)
            return
        c.inbuf += data
        while True:
            nl = c.inbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(c.inbuf[:nl])
            del c.inbuf[:nl + 1]
            if c.skipping:
                c.skipping = False
            elif len(line) > MAX_LINE:
                self._reply_error(c, f"ignored a command line longer than {MAX_LINE} bytes")
            else:
                self._handle(c, line)
        if len(c.inbuf) > MAX_LINE:
            c.inbuf.clear()
            c.skipping = True
            self._reply_error(c, f"ignored a command line longer than {MAX_LINE} bytes")

    def _handle(self, c: _Conn, line: bytes) -> None:
        if not line.strip():
            return
        try:
            cmd = protocol.decode_command(line)
        except protocol.ProtocolError as e:
            shown = line[:80].decode("utf-8", "replace")
            self._reply_error(c, f"ignored command {shown!r}: {e}")
            return
        try:
            self.on_command(cmd)
        except Exception as e:  # the engine refusing a command must not kill the server thread
            self._reply_error(c, f"command {cmd.cmd} failed: {e}")

    def _reply_error(self, c: _Conn, message: str) -> None:
        with self._mu:
            line = protocol.encode(protocol.event("error", self._iter, message=message)).encode()
            c.enqueue("error", line, self.max_backlog)


# ---------------------------------------------------------------- UI side

def not_running_message(run_dir: str | Path) -> str:
    st = engine_state.status(run_dir)
    return (f"{st.describe(run_dir)}; resume it with `gpttui launch {run_dir}`"
            if st.kind != "alive" else st.describe(run_dir))


@dataclass
class _Exit:
    code: int | None
    described: str


class SocketClient:
    """A running engine reached through its control socket, with ProtocolProcess's interface."""

    def __init__(self, run_dir: str | Path, *, history_from: int | None = None,
                 connect_timeout: float = 3.0) -> None:
        self.run_dir = Path(run_dir)
        st = engine_state.status(self.run_dir)
        if st.kind != "alive":
            raise NotRunning(not_running_message(self.run_dir))
        path = st.info.socket if st.info and st.info.socket else str(socket_path(self.run_dir))
        self.pid = st.info.pid if st.info else 0
        self.sock = self._connect(path, connect_timeout)
        self._stream = self.sock.makefile("rb")
        self._await_greeting(connect_timeout)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque()
        self._stderr_new: list[str] = []
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._dropped = self._bad = 0
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
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except OSError as e:
                sock.close()
                # The engine may hold the lock but not listen yet (it is starting up).
                if time.monotonic() >= deadline or engine_state.status(self.run_dir).kind != "alive":
                    raise NotRunning(f"cannot reach the engine on {self.run_dir} at {path}: "
                                     f"{e.strerror or e}; {not_running_message(self.run_dir)}") from None
                time.sleep(0.1)

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
        self._stderr_tail.extend(recent)
        self._stderr_new.extend(recent[-50:])  # the log panel opens on the engine's recent lines
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
                self._events.append(protocol.decode_event(raw))
            except protocol.ProtocolError:
                continue
        # Only the newest lines can still be on their way through the socket.
        self._seam = {raw.strip() for raw in raws[-SEAM_LINES:]}

    # ------------------------------------------------------------ reader threads

    def _read_socket(self) -> None:
        with self._stream as stream:
            try:
                for line in stream:
                    if self._seam and line.strip() in self._seam:
                        self._seam.discard(line.strip())
                        continue
                    try:
                        ev = protocol.decode_event(line)
                    except protocol.ProtocolError:
                        with self._lock:
                            self._bad += 1
                        continue
                    with self._lock:
                        self._events.append(ev)
                        if len(self._events) > MAX_PENDING:
                            self._thin()
            except OSError:
                pass
        self._on_disconnect()

    def _thin(self) -> None:
        self._events, dropped = thin_steps(self._events)
        self._dropped += dropped

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
                chunk = f.read(1 << 20)
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        if not end:
            return
        self._log_pos += end
        lines = [raw.decode("utf-8", "replace") for raw in chunk[:end].split(b"\n")[:-1]]
        with self._lock:
            self._stderr_new.extend(lines)
            self._stderr_tail.extend(lines)
            if len(self._stderr_new) > STDERR_TAIL:
                del self._stderr_new[:-STDERR_TAIL]

    # ------------------------------------------------------------ UI side

    def drain(self) -> Drained:
        with self._lock:
            out = Drained(list(self._events), self._stderr_new, self._dropped, self._bad)
            self._events.clear()
            self._stderr_new = []
            self._dropped = self._bad = 0
        return out

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

    def stderr_tail(self, n: int = 40) -> list[str]:
        with self._lock:
            return list(self._stderr_tail)[-n:]

    def wait(self, timeout: float | None = None) -> int | None:
        self._threads[0].join(timeout)
        return self.returncode

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.alive and self.pid:
            try:
                os.kill(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def terminate(self, grace: float = 5.0) -> int | None:
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.wait(5.0)
        return code

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

