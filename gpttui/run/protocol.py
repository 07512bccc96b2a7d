"""The engine <-> UI protocol: one JSON object per line, versioned.

Engine -> UI events carry "type", "iter" and wall time "t". UI -> engine commands carry "cmd".
No torch here: both sides import it.

Whatever reads events (metrics.jsonl, a child's stdout, the control socket) takes them through
`check_event`: every field of every known type has its type and range checked, so no reader
and no screen has to. A line whose envelope or key field is wrong is refused; a wrong
descriptive field is dropped and the rest of the line kept.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator

from gpttui.run import config as C
from gpttui.run import pretrained

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
    "undo": ("available",),  # a live learning-rate change can be undone (or no longer can)
}
EVENT_TYPES = frozenset(EVENT_FIELDS)

# Events the engine never coalesces or drops on a full pipe.
LOSSLESS = frozenset(EVENT_TYPES - {"step", "token", "progress"})

COMMANDS = frozenset({"pause", "resume", "stop", "save", "eval", "set", "undo",
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
    """One line of a known event type, checked field by field (bad descriptive fields dropped)."""
    event, _ = parse_event(line)
    if event["type"] not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {event['type']!r}")
    return event


# ---------------------------------------------------------------- what a read event may hold

MAX_COUNT = 2**53         # tokens, parameters: exact in a float, beyond any run
MAX_ITER = 10**8          # iterations: 100x nanoGPT's GPT-2 run, and an array per iteration still fits
_ITER_FIELDS = frozenset({"max_iters", "lr_decay_iters", "warmup_iters"})  # config fields counting iterations
MAX_REAL = 1e30           # any measured figure (loss, lr, FLOP/s, seconds) is far below
MAX_TIME = 1e11           # wall time "t": seconds since 1970, before the year 5000
MAX_NAME = 256            # device, dtype, state, a config key, an event type
MAX_PATH = 4096
MAX_TEXT = 1 << 20        # messages, tracebacks, sampled text: cut beyond this
MAX_LINE = 16 << 20       # bytes in one event line; a longer line is refused unread
_TYPE_RE = re.compile(r"[a-z_]{1,64}")


class _Bad(ValueError):
    """One field's value is not what it must be; the message says what was expected."""


# Values come from json.loads: exact int, float, bool, str, None, list or dict, so `type(v) is`
# tells them apart (bool is not an int here) and one chained comparison refuses NaN and
# infinities, cheaply: every line of a long run's history passes through these.

def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_real(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and -MAX_REAL <= v <= MAX_REAL


def _count(v: Any) -> int:
    if type(v) is int and 0 <= v < MAX_COUNT:
        return v
    raise _Bad("an integer in [0, 2**53)")


def _iteration(v: Any) -> int:
    if type(v) is int and 0 <= v < MAX_ITER:
        return v
    raise _Bad("an iteration in [0, 10**8)")


def _positive_count(v: Any) -> int:
    if type(v) is int and 0 < v < MAX_COUNT:
        return v
    raise _Bad("an integer in [1, 2**53)")


def _real_or_null(v: Any) -> float | None:
    """A measured figure; null is how a NaN or infinity travels (see _clean)."""
    if v is None or (type(v) is float or type(v) is int) and -MAX_REAL <= v <= MAX_REAL:
        return v
    raise _Bad("a finite number or null")


def _nonneg_or_null(v: Any) -> float | None:
    if v is None or (type(v) is float or type(v) is int) and 0 <= v <= MAX_REAL:
        return v
    raise _Bad("a finite number >= 0 or null")


def _positive_real(v: Any) -> float:
    if (type(v) is float or type(v) is int) and 0 < v <= MAX_REAL:
        return v
    raise _Bad("a finite number > 0")


def _time(v: Any) -> float:
    if (type(v) is float or type(v) is int) and 0 <= v < MAX_TIME:
        return v
    raise _Bad("a wall time in seconds since 1970")


def _flag(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise _Bad("true or false")


# Control characters (a terminal's escape sequences among them) and lone surrogates (which no
# terminal can encode) are shown as U+FFFD: a string read from outside is printed as it is.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNPRINTABLE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # keeps \t and \n


def _bounded_str(limit: int) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if isinstance(v, str) and len(v) <= limit:
            return _UNPRINTABLE.sub("\ufffd", v)
        raise _Bad(f"a string of at most {limit} characters")
    return check


_name, _path = _bounded_str(MAX_NAME), _bounded_str(MAX_PATH)


def _text(v: Any) -> str:
    """Free text: cut, not refused, when too long (the start of a message is what says most)."""
    if not isinstance(v, str):
        raise _Bad("a string")
    return _UNPRINTABLE_TEXT.sub("\ufffd", v if len(v) <= MAX_TEXT else v[:MAX_TEXT] + "…")


def _scalar(v: Any) -> Any:
    """A field this version does not know: kept only as a bounded scalar."""
    if v is None or isinstance(v, bool) or (abs(v) < MAX_COUNT if _is_int(v) else _is_real(v)):
        return v
    if isinstance(v, str):
        return _text(v)
    raise _Bad("a number, string, true/false or null")


def _config(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _Bad("an object")
    return clean_config(v)


def clean_config(v: dict[str, Any]) -> dict[str, Any]:
    """A config read from outside (a hello, its changes, a log's echo): known keys with their own
    type, in range; entries that are not are dropped one by one (the config stays incomplete
    rather than wrong)."""
    out: dict[str, Any] = {}
    for key, value in v.items():
        try:
            value = _scalar(C.coerce(key, value) if key in C.FIELDS else value)
            if key in _ITER_FIELDS:
                _iteration(value)
        except (C.ConfigError, _Bad):
            continue
        if len(key) <= MAX_NAME and not (isinstance(value, str) and len(value) > MAX_PATH):
            out[key] = value
    return out


def _run_config(v: Any) -> dict[str, Any]:
    """A hello's config: the whole config the run started with, held to the rules `gpttui train`
    holds a config file to (config.validate). A shape or rate no run could have started with
    (n_layer -4, block_size 0) means the line was garbled or tampered with, and every figure built
    from it (parameters, tokens, forecast) would be nonsense: it is dropped whole, never in part
    (a config missing its n_layer would be completed with the defaults')."""
    cleaned = _config(v)
    if lost := sorted(C.FIELDS.keys() & v.keys() - cleaned.keys()):   # of another type, or out of range
        raise _Bad(f"a config gpttui train would take, not {lost[0]}: {_shown(v[lost[0]])}")
    cfg = C.TrainConfig(**{k: cleaned[k] for k in C.FIELDS.keys() & cleaned.keys()})
    if pretrained.is_path(cfg.init_from):   # weights on disk then may be gone now: the record stands
        cfg = dataclasses.replace(cfg, init_from="scratch")
    # a rule broken by the defaults that complete a partial config (a hand-written hello's) is none of its own
    if problems := [p for p in C.validate(cfg) if p.partition(":")[0] in cleaned]:
        raise _Bad(f"a config gpttui train would take, not {problems[0]}")
    return cleaned


def _params(v: Any) -> dict[str, int]:
    if not isinstance(v, dict):
        raise _Bad("an object of parameter counts")
    return {k: n for k, n in v.items() if len(k) <= MAX_NAME and _is_int(n) and 0 <= n < MAX_COUNT}


_Check = Callable[[Any], Any]
# Per event type: field -> (check, key). A bad key field refuses the line; any other bad field
# is dropped. Fields not listed are kept as bounded scalars (_scalar).
SCHEMA: dict[str, dict[str, tuple[_Check, bool]]] = {
    "hello": {"version": (_count, False), "config": (_run_config, False), "params": (_params, False),
              "device": (_name, False), "device_name": (_name, False), "dtype": (_name, False),
              "dtype_reason": (_text, False), "peak_flops": (_positive_real, False),
              "tokens_per_iter": (_positive_count, False), "start_iter": (_iteration, True),
              "max_iters": (_iteration, False), "world_size": (_positive_count, False),
              "run_dir": (_path, False), "pid": (_count, False), "threads": (_count, False)},
    "step": {"loss": (_real_or_null, True), "lr": (_nonneg_or_null, False), "dt_ms": (_nonneg_or_null, False),
             "tokens_per_s": (_nonneg_or_null, False), "mfu": (_nonneg_or_null, False),
             "grad_norm": (_nonneg_or_null, False), "tokens": (_count, False)},
    "eval": {"train_loss": (_real_or_null, True), "val_loss": (_real_or_null, True),
             "best_val_loss": (_real_or_null, False)},
    "checkpoint": {"path": (_path, True), "val_loss": (_real_or_null, False)},
    "state": {"state": (_name, True), "reason": (_text, False), "threads": (_count, False),
              "prompt_tokens": (_count, False), "device": (_name, False)},
    "config": {"changes": (_config, True)},
    "log": {"message": (_text, True), "ready": (_flag, False), "ckpt": (_path, False),
            "iter_num": (_iteration, False), "val_loss": (_real_or_null, False), "params": (_count, False),
            "block_size": (_positive_count, False), "tokenizer": (_name, False),
            "vocab_size": (_positive_count, False), "device": (_name, False),
            "device_reason": (_text, False), "load_s": (_nonneg_or_null, False),
            "tokenizer_note": (_text, False)},
    "error": {"message": (_text, True), "traceback": (_text, False), "refused": (_flag, False)},
    "token": {"text": (_text, True), "sample": (_count, False), "prompt": (_flag, False)},
    "sample_done": {"text": (_text, True), "sample": (_count, False), "prompt": (_text, False),
                    "tokens": (_count, False), "seconds": (_nonneg_or_null, False),
                    "first_token_s": (_nonneg_or_null, False), "tokens_per_s": (_nonneg_or_null, False),
                    "stopped": (_flag, False), "eot": (_flag, False), "seed": (_scalar, False),
                    "ckpt": (_path, False), "val_loss": (_real_or_null, False),
                    "temperature": (_nonneg_or_null, False), "top_k": (_scalar, False),
                    "top_p": (_nonneg_or_null, False)},
    "progress": {"done": (_count, True), "total": (_count, True)},
    "undo": {"available": (_flag, True), "done": (_flag, False), "to_iter": (_count, False),
             "values": (_config, False), "message": (_text, False)},
}

_ENVELOPE: dict[str, tuple[_Check, bool]] = {"iter": (_iteration, True), "t": (_time, True)}
_CHECKS = {kind: {**fields, **_ENVELOPE} for kind, fields in SCHEMA.items()}
_UNKNOWN: tuple[_Check, bool] = (_scalar, False)


def check_event(obj: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A decoded JSON value as an event whose every field holds what it must, and the fields
    dropped for holding something else, each with what it should have held. ProtocolError (naming
    the field) when the line itself is not usable: not an object, no type, a bad iter or t, a bad
    key field."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"not an event: a JSON {type(obj).__name__}, not an object")
    kind = obj.get("type")
    if not isinstance(kind, str) or not _TYPE_RE.fullmatch(kind):
        raise ProtocolError("type: expected an event type (lower-case letters), got "
                            f"{_shown(kind)}")
    out: dict[str, Any] = {"type": kind}
    dropped: dict[str, str] = {}
    checks = _CHECKS.get(kind, _ENVELOPE)
    for name, value in obj.items():
        if name == "type":
            continue
        check, key = checks.get(name, _UNKNOWN)
        try:
            out[name] = check(value)
        except _Bad as e:
            if key:
                raise ProtocolError(f"{kind} event: {name}: expected {e}, got {_shown(value)}") from None
            dropped[name] = f"expected {e}" + ("" if isinstance(value, (dict, list)) else f", got {_shown(value)}")
    if "iter" not in out:
        raise ProtocolError(f"{kind} event: iter: missing")
    return out, dropped


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_event(line: str | bytes) -> tuple[dict[str, Any], dict[str, str]]:
    """One line as an event (any type) and the fields dropped from it, each with why."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a line of {len(line):,} bytes: longer than {MAX_LINE:,}")
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"not JSON: {e}") from None
    return check_event(obj)


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of a binary stream, each at most `limit` bytes: the head of a longer one
    (refused by parse_event for its size) stands for the whole line, whose rest is read and
    thrown away, so one endless line never holds more than `limit` bytes in memory."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
                pass
        yield line


@dataclass
class Command:
    cmd: str
    values: dict[str, Any]  # for `set`: field -> new value; empty otherwise


def decode_command(line: str | bytes) -> Command:
    """Parse a command line. `set` takes {"values": {...}}, {"key": k, "value": v} or fields inline."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"command is not JSON: {e}") from None
    if not isinstance(obj, dict) or "cmd" not in obj:
        raise ProtocolError('command must be a JSON object with "cmd"')
    cmd = obj["cmd"]
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {_shown(cmd)}; expected one of {', '.join(sorted(COMMANDS))}")
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
        if not isinstance(obj["key"], str):
            raise ProtocolError(f'set: "key" must be a field name, got {_shown(obj["key"])}')
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
