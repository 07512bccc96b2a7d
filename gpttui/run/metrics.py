"""RUN_DIR/metrics.jsonl, the run's record: one protocol event per line, appended, never rewritten.

Readers must expect a torn last line (the engine killed mid-write) and garbled lines: they are
skipped and counted, never fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from gpttui.run.protocol import encode


class EventReader:
    """Iterate a metrics.jsonl's events; torn or garbled lines are skipped and counted.

    `end` is the byte offset the reading stopped at: a UI attaching to the running engine
    passes it on (ipc.client.SocketClient's history_from) so nothing falls between history and live.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.skipped = 0
        self.lines = 0
        self.end = 0

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                self.lines += 1
                event = _decode(raw)
                if event is None:
                    self.skipped += 1
                else:
                    yield event
            self.end = f.tell()


def _decode(raw: bytes | str) -> dict | None:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("type"), str) else None


def read_events(path: str | Path) -> Iterator[dict]:
    """The events of a metrics.jsonl; a torn line (a kill mid-write) is skipped, never fatal."""
    return iter(EventReader(path))


class MetricsTail:
    """Follow a growing metrics.jsonl: `poll()` returns the events of newly completed lines.

    A last line without its newline is left for the next poll (the writer may be mid-line).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self.skipped = 0

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        out = []
        for raw in data[:end].splitlines():
            if raw.strip():
                event = _decode(raw)
                if event is None:
                    self.skipped += 1
                else:
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
