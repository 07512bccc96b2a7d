"""What reader threads received and the UI has not taken yet: events, log lines, counts.

Both ways the UI reaches a process that speaks the protocol (a child's pipes in process.py,
the engine's control socket in client.py) read on background threads into one `Inbox`; the
UI takes everything at once with `drain()` on its own timer, never per event. The inbox is
bounded: past MAX_PENDING waiting events, step-like ones are thinned (the full history is in
metrics.jsonl); lossless events (eval, state, error ...) never are.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from gpttui.run import protocol

MAX_PENDING = 20_000  # events waiting for the UI beyond this are thinned
STDERR_TAIL = 400  # log lines kept for the failure screen (and the most kept undrained)
MAX_LOG_LINE = 4096  # characters of one log line kept (a child printing without newlines is cut)


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
    bad_lines: int = 0        # lines that were not protocol events


class Inbox:
    """Thread-safe buffers between reader threads (put_*) and the UI (drain, tail)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limit = MAX_PENDING
        self._events: deque[dict[str, Any]] = deque()
        self._lines: list[str] = []
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._dropped = 0
        self._bad = 0

    def put_event(self, ev: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(ev)
            if len(self._events) > self._limit:
                self._events, dropped = thin_steps(self._events)
                self._dropped += dropped

    def put_bad(self, text: str = "") -> None:
        """Count a line that was not an event; `text` (a stray print in the child) joins the log."""
        with self._lock:
            self._bad += 1
            if text:
                self._add_lines([text])

    def put_lines(self, lines: Iterable[str], *, show: int = STDERR_TAIL) -> None:
        """Log lines (a child's stderr, the engine's log file) for the tail; the last `show`
        of them also for the next drain (the log pane)."""
        with self._lock:
            self._add_lines(lines, show)

    def _add_lines(self, lines: Iterable[str], show: int = STDERR_TAIL) -> None:
        lines = [line if len(line) <= MAX_LOG_LINE else line[:MAX_LOG_LINE] + "…" for line in lines]
        self._tail.extend(lines)
        self._lines.extend(lines[max(0, len(lines) - show):])
        if len(self._lines) > STDERR_TAIL:
            del self._lines[:-STDERR_TAIL]

    def drain(self) -> Drained:
        """Everything that arrived since the last call (cheap when nothing did)."""
        with self._lock:
            out = Drained(list(self._events), self._lines, self._dropped, self._bad)
            self._events.clear()
            self._lines = []
            self._dropped = self._bad = 0
        return out

    def tail(self, n: int) -> list[str]:
        """The last `n` log lines, drained or not."""
        with self._lock:
            return list(self._tail)[-n:]
