"""The engine's side of the pipes: events out, commands in, neither ever stalls training.

Events are appended to RUN_DIR/metrics.jsonl (flushed per line: the file is the record) and
queued for stdout, where a writer thread does the blocking writes. If the reader falls behind
the queue fills; then live events (steps) are coalesced, the newest kept, while lossless ones
(eval, checkpoint, state, error...) always go through. Human log lines take the same path to
stderr and are also appended to RUN_DIR/engine.log.

Commands are read from stdin on a thread and handed over through a queue; end of input just
ends the thread (the UI may detach and training goes on).

Both files are durable.AppendFile: a full disk never tears a line or raises here; `on_disk_full`
is told and the lines wait in memory. `on_broken` is told when stdout or stderr breaks, and
CommandReader's `on_eof` at end of input (engine/host.py turns both into "the UI is gone").
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any, Callable

from gpttui.engine.durable import AppendFile
from gpttui.run import layout, protocol


class LineWriter:
    """Writes lines to a stream from a thread; `put` never blocks.

    At most `cap` lossy lines wait; beyond that a new lossy line replaces the newest waiting
    one if that one is lossy too. Lossless lines are always queued.
    """

    def __init__(self, stream: IO[bytes], cap: int = 256, name: str = "writer",
                 on_broken: Callable[[], None] | None = None):
        self.stream = stream
        self.on_broken = on_broken
        self.cap = cap
        self.lines: deque[tuple[bool, bytes]] = deque()
        self.lossy = 0
        self.dropped = 0
        self.broken = False
        self.cond = threading.Condition()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, line: bytes, lossy: bool = False) -> None:
        with self.cond:
            if self.broken:
                return
            if lossy and self.lossy >= self.cap and self.lines and self.lines[-1][0]:
                self.lines[-1] = (True, line)
                self.dropped += 1
            else:
                self.lines.append((lossy, line))
                self.lossy += lossy
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.lines and not self.closing:
                    self.cond.wait()
                if not self.lines:
                    return
                batch = [line for _, line in self.lines]
                self.lines.clear()
                self.lossy = 0
            try:
                self.stream.write(b"".join(batch))
                self.stream.flush()
            except (OSError, ValueError):  # the reader went away: keep training, stop writing
                with self.cond:
                    self.broken = True
                    self.lines.clear()
                if self.on_broken is not None:
                    self.on_broken()
                return

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is queued (waiting at most `timeout` for a slow reader)."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.thread.join(timeout)


class Channel:
    """Events and human log lines of one engine process (rank 0's; other ranks get a mute one)."""

    def __init__(self, run_dir: Path | None, stdout: IO[bytes] | None = None,
                 stderr: IO[bytes] | None = None, *,
                 on_broken: Callable[[], None] | None = None,
                 on_disk_full: Callable[[OSError], None] | None = None):
        self.metrics = AppendFile(run_dir / layout.METRICS, on_disk_full, faults=True) if run_dir else None
        self.logfile = AppendFile(run_dir / layout.ENGINE_LOG) if run_dir else None
        self.out = LineWriter(stdout, name="events", on_broken=on_broken) if stdout else None
        self.err = LineWriter(stderr, name="log", on_broken=on_broken) if stderr else None
        self.lock = threading.Lock()
        # more readers of every event, e.g. a control socket: called as f(event, line), must not block
        self.listeners: list[Callable[[dict[str, Any], str], None]] = []

    def emit(self, type_: str, iter_: int, **fields: Any) -> dict[str, Any]:
        ev = protocol.event(type_, iter_, **fields)
        line = protocol.encode(ev)
        with self.lock:
            if self.metrics:
                self.metrics.write(line)
            if self.out:
                self.out.put(line.encode(), lossy=type_ not in protocol.LOSSLESS)
            for listener in self.listeners:
                listener(ev, line)
        return ev

    def log(self, message: str, lossy: bool = False) -> None:
        """A human log line (nanoGPT's wording) to stderr and engine.log."""
        with self.lock:
            if self.logfile:
                self.logfile.write(message + "\n")
            if self.err:
                self.err.put((message + "\n").encode(), lossy=lossy)

    def written(self) -> bool:
        """Retry the lines a full disk held back; True when none are left waiting."""
        with self.lock:
            for f in (self.metrics, self.logfile):
                if f:
                    f.flush()
            return not any(f and f.pending for f in (self.metrics, self.logfile))

    def note(self, message: str, iter_: int = 0) -> None:
        """A line worth both the human log and a `log` event."""
        self.log(message)
        self.emit("log", iter_, message=message)

    def close(self) -> None:
        for w in (self.out, self.err):
            if w:
                w.close()
        for f in (self.metrics, self.logfile):
            if f:
                f.close()


class CommandReader:
    """Reads command lines from `stream` on a daemon thread into a queue of Command | str
    (a str is the error message for a bad line)."""

    def __init__(self, stream: IO[str] | None = None, on_eof: Callable[[], None] | None = None):
        self.queue: queue.SimpleQueue[protocol.Command | str] = queue.SimpleQueue()
        self.stream = stream if stream is not None else sys.stdin
        self.on_eof = on_eof
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for line in self.stream:
                if not line.strip():
                    continue
                try:
                    self.queue.put(protocol.decode_command(line))
                except protocol.ProtocolError as e:
                    self.queue.put(f"bad command {line.strip()[:120]!r}: {e}")
        except (OSError, ValueError):
            pass  # stdin closed under us: same as end of input
        if self.on_eof is not None:
            self.on_eof()

    def push(self, cmd: protocol.Command) -> None:
        """Queue a command from inside the process (signal handlers)."""
        self.queue.put(cmd)

    def drain(self) -> list[protocol.Command | str]:
        out: list[protocol.Command | str] = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def wait(self, timeout: float) -> list[protocol.Command | str]:
        """Block up to `timeout` for the next command, then return all that are waiting."""
        try:
            first = self.queue.get(timeout=timeout)
        except queue.Empty:
            return []
        return [first, *self.drain()]

