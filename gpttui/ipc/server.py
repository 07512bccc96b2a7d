"""The engine's local control socket, RUN_DIR/engine.sock: UIs attach, detach and re-attach.

`ControlServer` runs in the engine: one background thread (selectors, non-blocking sockets)
accepts clients, streams each of them every event the engine publishes and takes protocol
commands from them. `publish()` is what the training loop pays: a dict lookup and, per client,
an append to a queue under a lock; it never blocks on a socket. Per client:
  - lossless events (eval, checkpoint, state, error, ...) are queued and never dropped;
  - once a client is COALESCE_AFTER bytes behind, a step-like event (step, progress, token)
    replaces the newest one of its type still waiting for it (coalesced): a slow client sees
    fewer steps, never old ones, while a client that keeps up gets every one;
  - a client whose backlog passes `max_backlog` bytes (frozen, not reading) is disconnected:
    the engine's memory stays bounded, and everything is in metrics.jsonl for when it returns.
Bad command lines are answered to their sender with an error event and otherwise ignored.
A new client's first line is a `log` event, GREETING, sent once the server has registered
it: every event published after that line reaches the client, and every earlier one is already
in metrics.jsonl (the channel writes the file before publishing). The UI's side is client.py.

The socket is created owner-only (0600). Linux limits socket paths to 107 bytes, so a run
directory with a long path gets its socket in a private 0700 directory under the temp dir; the
real path is recorded in engine.json either way. No torch here.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from gpttui.run import layout, protocol

GREETING = "attached to the engine's control socket"
MAX_BACKLOG = 8 << 20  # bytes a client may fall behind before it is disconnected
COALESCE_AFTER = 64 << 10  # a client this far behind gets only the newest step-like events
MAX_LINE = 64 << 10  # longest command line accepted
CHUNK = 64 << 10  # bytes moved from a client's queue to its socket at a time
BATCH_S = 0.005  # the I/O thread wakes at most every 5 ms while events stream
BACKLOG = 128  # connections the kernel holds until the I/O thread accepts them (UIs attaching at once)
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS


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
        sock.listen(BACKLOG)
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
