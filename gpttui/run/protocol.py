"""The engine <-> UI protocol: one JSON object per line, versioned.

Engine -> UI events carry "type", "iter" and wall time "t". UI -> engine commands carry "cmd".
No torch here: both sides import it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1

# Event types and the fields each one must carry (beyond type, iter, t).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("version", "config", "params", "device", "peak_flops", "tokens_per_iter", "start_iter"),
    "step": ("loss", "lr", "dt_ms", "tokens_per_s", "mfu", "grad_norm"),
    "eval": ("train_loss", "val_loss"),
    "checkpoint": ("path", "val_loss"),
    "state": ("state",),
    "config": ("changes",),
    "log": ("message",),
    "error": ("message",),
    "token": ("text",),
    "sample_done": ("text",),
    "progress": ("done", "total"),
}
EVENT_TYPES = frozenset(EVENT_FIELDS)

# Events the engine never coalesces or drops on a full pipe.
LOSSLESS = frozenset(EVENT_TYPES - {"step", "token", "progress"})

COMMANDS = frozenset({"pause", "resume", "stop", "save", "eval", "set",
                      "sample"})  # sample: the sampler process's request (engine/sample.py)


class ProtocolError(ValueError):
    """A line that is not a valid event or command."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: send them as null (the engine reports why separately)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def event(type_: str, iter_: int, **fields: Any) -> dict[str, Any]:
    """Build an event dict; the fields for its type must all be given."""
    if type_ not in EVENT_FIELDS:
        raise ProtocolError(f"unknown event type {type_!r}")
    missing = [f for f in EVENT_FIELDS[type_] if f not in fields]
    if missing:
        raise ProtocolError(f"{type_} event lacks {', '.join(missing)}")
    return {"type": type_, "iter": int(iter_), "t": round(time.time(), 3), **fields}


def encode(obj: dict[str, Any]) -> str:
    """One line of JSON, newline included."""
    return json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False) + "\n"


def decode_event(line: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(obj, dict) or obj.get("type") not in EVENT_TYPES:
        raise ProtocolError(f"not an event: {str(line)[:80]!r}")
    return obj


@dataclass
class Command:
    cmd: str
    values: dict[str, Any]  # for `set`: field -> new value; empty otherwise


def decode_command(line: str | bytes) -> Command:
    """Parse a command line. `set` takes {"values": {...}}, {"key": k, "value": v} or fields inline."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError(f"command is not JSON: {e}") from None
    if not isinstance(obj, dict) or "cmd" not in obj:
        raise ProtocolError('command must be a JSON object with "cmd"')
    cmd = obj["cmd"]
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; expected one of {', '.join(sorted(COMMANDS))}")
    if cmd == "sample":
        values = obj.get("values", {})
        if not isinstance(values, dict):
            raise ProtocolError('sample takes {"values": {...}}, e.g. {"cmd": "sample", "values": {"start": "ROMEO:"}}')
        return Command("sample", dict(values))
    if cmd != "set":
        return Command(cmd, {})
    if isinstance(obj.get("values"), dict):
        values = dict(obj["values"])
    elif "key" in obj and "value" in obj:
        values = {obj["key"]: obj["value"]}
    else:
        values = {k: v for k, v in obj.items() if k != "cmd"}
    if not values:
        raise ProtocolError('set needs values, e.g. {"cmd": "set", "values": {"max_iters": 5000}}')
    return Command("set", values)


def command(cmd: str, **values: Any) -> str:
    """Encode a command line for the engine's stdin."""
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}")
    obj: dict[str, Any] = {"cmd": cmd}
    if values:
        obj["values"] = values
    return encode(obj)
