"""RUN_DIR/metrics.jsonl, the run's record: one protocol event per line, appended, never rewritten.

Readers must expect a torn last line (the engine killed mid-write) and garbled or hostile lines:
every line goes through protocol.parse_event (each field's type and range checked), a line that
fails is skipped and counted, a bad descriptive field is dropped and its line counted as
repaired; never fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from gpttui.run.protocol import MAX_LINE, ProtocolError, bounded_lines, encode, parse_event

READ_CHUNK = 4 * MAX_LINE  # bytes a MetricsTail poll reads at most (the rest waits for the next)


class LineCounts:
    """The lines a reader of metrics.jsonl has seen, and what became of them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lines = 0
        self.skipped = 0      # lines not used at all
        self.repaired = 0     # lines used without a field that held a bad value
        self.first_repair = ""   # the first such field, and what it should have held

    def _decode(self, raw: bytes) -> dict | None:
        self.lines += 1
        try:
            event, dropped = parse_event(raw)
        except ProtocolError:
            self.skipped += 1
            return None
        if dropped:
            self.repaired += 1
            if not self.first_repair:
                name, why = next(iter(dropped.items()))
                self.first_repair = f"line {self.lines}: {event['type']} {name}: {why}"
        return event


class EventReader(LineCounts):
    """Iterate a metrics.jsonl's events; torn or malformed lines are skipped and counted.

    `end` is the byte offset the reading stopped at: a UI attaching to the running engine
    passes it on (ipc.client.SocketClient's history_from) so nothing falls between history and live.
    """

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.end = 0

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            for raw in bounded_lines(f):
                if raw.strip() and (event := self._decode(raw)) is not None:
                    yield event
            self.end = f.tell()


def read_events(path: str | Path) -> Iterator[dict]:
    """The events of a metrics.jsonl; a torn line (a kill mid-write) is skipped, never fatal."""
    return iter(EventReader(path))


class MetricsTail(LineCounts):
    """Follow a growing metrics.jsonl: `poll()` returns the events of newly completed lines.

    A last line without its newline is left for the next poll (the writer may be mid-line),
    unless it is already longer than any event may be: then it is passed over as it grows,
    and counted once, when its end arrives.
    """

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.offset = 0

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(READ_CHUNK)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if not end and len(data) > MAX_LINE:
            self.offset += len(data)
            return []
        out = []
        for raw in data[:end].splitlines():
            if raw.strip() and (event := self._decode(raw)) is not None:
                out.append(event)
        self.offset += end
        return out


class MetricsWriter:
    """Append-only metrics.jsonl writer: one JSON object per line, flushed per line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, event: dict) -> None:
        self._f.write(encode(event))
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
