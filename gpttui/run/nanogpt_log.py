"""Reading nanoGPT's train.py stdout (and gpttui's engine.log, which prints the same lines).

`parse(text)` turns a log into protocol events (step, eval, checkpoint, and a `session` event
where a process started) and the facts the log prints once (the echoed config, parameters,
tokens per iteration, device). RunHistory.from_nanogpt_log applies them. Lines it does not
know (blanks, shell prompts, torn lines) are counted as stray; Python's warnings are not. A prefix
that a tool put on every line (torchrun's `[default0]:`, a timestamp from `ts` or `docker logs -t`)
is read past (`line_prefix`), or the config's echo and the parameter count would go unread. A
Python traceback that no record follows (the process died: out of memory, Ctrl+C) becomes an
`error` event with its exception line; one that records follow (a run appended after) does not.

nanoGPT prints no timestamps: the events carry no `t`, and a step's `dt_ms` is that one
iteration's time (gpttui.analysis.doctor estimates durations from it). The printed mfu is a
running average against an A100 whatever the card (NANOGPT_A100_PEAK); its -100% (the first
iterations of a process, not yet measured) becomes None. A loss that is not finite (nanoGPT prints
`loss nan` once a run diverges) is kept as it is; a time or mfu that is not finite becomes None.
"""

from __future__ import annotations

import ast
import codecs
import copy
import itertools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpttui.run import config as C
from gpttui.run.nanogpt_stock import STOCK_CONFIGS
from gpttui.run.protocol import MAX_COUNT, MAX_ITER, MAX_REAL, check_event

PREFIXED = 0.9   # the share of eval and iteration lines that must begin alike for that to be a prefix ...
PREFIX_SAMPLE = 1000   # ... of the first this many
BEFORE_RECORDS = 10_000   # lines kept, until the first record, to read again once a prefix shows
NANOGPT_A100_PEAK = 312e12  # nanoGPT's estimate_mfu divides by this, whatever the card
_FLOAT = r"(-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
ITER_RE = re.compile(r"iter (\d+): loss " + _FLOAT + r", time " + _FLOAT + r"ms(?:, mfu " + _FLOAT + r"%)?")
STEP_RE = re.compile(r"step (\d+): train loss " + _FLOAT + r", val loss " + _FLOAT)
SAVE_RE = re.compile(r"^saving checkpoint to (.+?)\s*$")
OVERRIDE_FILE_RE = re.compile(r"^Overriding config with (.+):\s*$")
OVERRIDE_KV_RE = re.compile(r"^Overriding: (\w+) = (.*?)\s*$")
TPI_RE = re.compile(r"^tokens per iteration will be: ([\d,]+)\s*$")
PARAMS_RE = re.compile(r"^number of parameters: ([\d.]+)M\s*$")
VOCAB_RE = re.compile(r"^(?:found vocab_size = (\d+)|defaulting to vocab_size of GPT-2 to (\d+)"
                      r"|forcing vocab_size=(\d+))")   # the last: GPT-2's weights loaded (init_from gpt2*)
RESUME_RE = re.compile(r"^Resuming training from ")
# gpttui's engine log says which device and peak its MFU is against, and how the run ended.
DEVICE_RE = re.compile(r"^device (\S+) \((.*)\), (\w+),.*; peak ([\d.]+) TFLOP/s")
END_RE = re.compile(r"^(finished|stopped|failed) at iter (\d+)")
# A Python warning (torch's, on every CPU run: "train.py:196: FutureWarning: ..."), and the indented
# source line Python prints under it: output of the run, not stray.
WARNING_RE = re.compile(r"^\S+:\d+: [A-Z]\w*Warning: ")
# A Python traceback (the process died: CUDA out of memory, Ctrl+C): its exception line, the first one
# not indented after it, is how the run ended; chained tracebacks end on the last one.
TRACEBACK_RE = re.compile(r"^Traceback \(most recent call last\):\s*$")
CHAINED_RE = re.compile(r"^(During handling of the above exception|The above exception was the direct cause)")
# torchrun puts `[rank0]:` before a worker's error lines (its other output has none), and then ends on
# its own traceback, ChildFailedError, with no message: the worker's error, when printed, says more.
RANK_RE = re.compile(r"^\[rank\d+\]: ?")
LAUNCHER_ERROR = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError"
# configurator.py asserts an override's type is its default's, and says nothing more
CONFIGURATOR_TYPE = ("AssertionError in nanoGPT's configurator.py: an override's value is not of its default's "
                     "type (the one after the last 'Overriding:' line; e.g. --min_lr=0 for a float: write 0.0)")
# Other lines nanoGPT's train.py prints: recognised, so not counted as stray.
KNOWN_RE = re.compile(
    r"^(Initializing (a new model from scratch|from OpenAI GPT-2 weights)|num (non-)?decayed parameter tensors"
    r"|using fused AdamW|compiling the model|loading weights from pretrained gpt"
    r"|overriding dropout rate"
    r"|training on \S+ \(.*\) in \w+|dtype \w+ asked for|loss: (plain )?lm_head)")   # the last three: gpttui train's


# Windows PowerShell 5 (`python train.py > log.txt`, Tee-Object) writes UTF-16 with a byte-order mark;
# Out-File -Encoding utf8 and Notepad, UTF-8 with one. The mark says the encoding.
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))   # UTF-32 LE's mark starts as 16's


@dataclass
class NanogptLog:
    """What a log says: its records as events, in order, and what it prints once."""

    events: list[dict] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)   # echoed values gpttui knows
    config_text: str = ""                # the echoed config's source text (it may promise sizes)
    config_file: str | None = None       # "Overriding config with FILE:"
    config_complete: bool = False        # a config was echoed: nanoGPT's defaults plus it are the whole config
    config_unknown: dict[str, str] = field(default_factory=dict)  # echoed keys gpttui doesn't know
    params: float | None = None          # "number of parameters: 123.59M"
    tokens_per_iter: int | None = None
    device: dict[str, Any] = field(default_factory=dict)
    mfu_peak: float = NANOGPT_A100_PEAK  # FLOP/s the printed mfu is against
    state: str | None = None             # gpttui's engine log: how the run ended
    lines: int = 0
    stray: int = 0


class _Parser:
    """Follows what the history will hold, for the choices that depend on it: an iteration going
    backwards is a restart from an earlier checkpoint (records from there on are abandoned), and
    a checkpoint belongs to the last eval that still stands."""

    def __init__(self) -> None:
        self.log = NanogptLog()
        self.last: int | None = None                    # the last step or eval iteration
        self.evals: list[tuple[int, float]] = []        # (iter, val loss) of the standing evals
        self.in_warmup = False
        self.started = False                            # a session event was emitted
        self.echo: list[str] | None = None              # lines of a config file being echoed
        self.warned = False                             # the line before was a Python warning
        self.traceback = False                          # in a traceback, before its exception line
        self.chained = False                            # just after one: another may be chained to it
        self.error: tuple[int, str] | None = None       # (iter, exception line) no record came after
        self.configuring = False                        # the traceback passes through nanoGPT's configurator.py

    def line(self, line: str) -> None:
        if self.echo is not None:
            if not _ends_echo(line):
                self.echo.append(line)
                return
            self._end_echo()
        log = self.log
        warned, self.warned = self.warned, False
        if self._in_traceback(line):
            return
        if m := STEP_RE.search(line):
            it, train, val = _count(m[1], MAX_ITER), _loss(m[2]), _loss(m[3])
            self._branch(it)
            self._record({"type": "eval", "iter": it, "train_loss": train, "val_loss": val})
            if self.evals and self.evals[-1][0] == it:
                self.evals.pop()
            self.evals.append((it, val))
        elif m := ITER_RE.search(line):
            it, loss, dt = _count(m[1], MAX_ITER), _loss(m[2]), _figure(m[3])
            mfu = _figure(m[4]) if m[4] is not None else None
            restarted = self._branch(it)
            warming = mfu is not None and mfu <= -100.0   # nanoGPT's first iterations of a process
            if not restarted and (warming and not self.in_warmup or not self.started):
                self._session(it)
            self.in_warmup = warming
            mfu = None if warming else mfu
            self._record({"type": "step", "iter": it, "loss": loss, "dt_ms": dt,
                          "mfu": None if mfu is None else round(mfu / 100.0, 8)})
        elif m := SAVE_RE.match(line):
            it, val = self.evals[-1] if self.evals else (self.last or 0, None)
            log.events.append({"type": "checkpoint", "iter": it, "path": m[1], "val_loss": val})
        elif m := OVERRIDE_FILE_RE.match(line):
            log.config_file = m[1]
            self.echo = []
        elif m := OVERRIDE_KV_RE.match(line):
            self._apply_override(m[1], m[2])
        elif m := TPI_RE.match(line):
            log.tokens_per_iter = _count(m[1].replace(",", ""))
        elif m := PARAMS_RE.match(line):
            log.params = _positive(m[1]) * 1e6
        elif m := VOCAB_RE.match(line):
            log.config["vocab_size"] = _count(m[1] or m[2] or m[3])
        elif RESUME_RE.match(line):
            log.config["init_from"] = "resume"
        elif m := DEVICE_RE.match(line):
            peak = _positive(m[4]) * 1e12
            log.device = {"device": m[1], "device_name": m[2], "dtype": m[3], "peak_flops": peak}
            log.mfu_peak = peak
        elif m := END_RE.match(line):
            log.state = m[1]
        elif WARNING_RE.match(line):
            self.warned = True
        elif warned and line[:1].isspace() and line.strip():
            pass   # the warning's source line
        elif not KNOWN_RE.match(line):
            log.stray += 1

    def _in_traceback(self, line: str) -> bool:
        """Whether the line belongs to a traceback: its start, its frames, its exception line (kept as
        `error`), and the blank lines and words between chained ones. A record cuts one short (a torn
        log): then its first line is stray and the record is read."""
        if not (self.traceback or self.chained or line.startswith(("Traceback", "[rank"))):
            return False
        chained, self.chained = self.chained, False
        line = RANK_RE.sub("", line, count=1)
        if self.traceback:
            if STEP_RE.search(line) or ITER_RE.search(line):
                self.traceback = False
                self.log.stray += 1
                return False
            if not (line[:1].isspace() or TRACEBACK_RE.match(line)):
                self.traceback, self.chained = False, True
                if not (line.startswith(LAUNCHER_ERROR) and self.error is not None):
                    message = line.strip()
                    if self.configuring and message == "AssertionError":
                        message = CONFIGURATOR_TYPE
                    self.error = (self.last or 0, message)
            self.configuring = self.configuring or "configurator.py" in line
            return True
        if TRACEBACK_RE.match(line):
            self.traceback, self.configuring = True, False
            return True
        if chained and (not line.strip() or CHAINED_RE.match(line)):
            self.chained = True
            return True
        return False

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            try:
                self.line(line)
            except (ValueError, RecursionError):   # a number no run prints, an echo nested too deep
                self.log.stray += 1
            self.log.lines += 1

    def finish(self) -> NanogptLog:
        """What the log says as far as read. Lines read after may still add to it (a log being
        written): a traceback's error is added to this copy only, not to the events to come."""
        if self.echo is not None:
            try:
                self._end_echo()
            except (ValueError, RecursionError):
                pass
        log = copy.copy(self.log)
        log.stray += self.traceback   # one cut off before its exception line
        if (error := self.error_event()) is not None:
            log.events = [*log.events, error]
        return log

    def error_event(self) -> dict | None:
        """The traceback the log ends on, as an error event (checked as any: its text is shown); None
        where records followed the last one, or there is none."""
        if self.error is None:
            return None
        return check_event({"type": "error", "iter": self.error[0], "message": self.error[1]})[0]

    def _end_echo(self) -> None:
        text = "\n".join(self.echo or [])
        self.echo = None
        stock = stock_config(self.log.config_file)
        if stock is not None and not _assigns(text):
            # nanoGPT echoes the file; a log that lost the echo still names a file whose values are known
            self.log.config.update(stock)
            self.log.config_complete = True
        self._apply_echo(text)

    def _apply_override(self, key: str, text: str) -> None:
        """`Overriding: key = value`, as nanoGPT's configurator prints it: str(value), so text
        comes unquoted (`dtype = float32`); gpttui's own train prints repr (quoted)."""
        log = self.log
        log.config_text += f"{key} = {text}\n"
        log.config_complete = True
        if key not in C.FIELDS:
            log.config_unknown[key] = text
            return
        try:
            log.config[key] = C.parse_value(key, text)
            return
        except C.ConfigError:
            pass
        try:   # an expression (nanoGPT itself would have refused it, but a log may say `5 * 8`)
            log.config.update(C.parse_nanogpt_py(f"{key} = {text}"))
        except C.ConfigError:
            log.config_unknown[key] = text

    def _record(self, event: dict) -> None:
        self.log.events.append(event)
        self.last = event["iter"]
        self.error = None   # the log went on: that process's error did not end it

    def _branch(self, it: int) -> bool:
        """An iteration number going backwards: nanoGPT restarted from an earlier checkpoint."""
        if self.last is None or it >= self.last:
            return False
        self.evals = [e for e in self.evals if e[0] < it]
        self._session(it)
        return True

    def _session(self, it: int) -> None:
        """A process starting at `it`, with the config as read so far: a log appended to by a resume
        (`tee -a`) that changed the schedule ran each stretch under its own."""
        event: dict[str, Any] = {"type": "session", "iter": it}
        if self.log.config_complete:
            event["config"] = dict(self.log.config)
        self.log.events.append(event)
        self.started = True

    def _apply_echo(self, text: str) -> None:
        """Take `name = value` lines of an echoed config; unknown or non-literal ones are recorded."""
        log = self.log
        if not text.strip():
            return
        log.config_text += text + "\n"
        log.config_complete = True
        known_text = "\n".join(f"{k} = {v!r}" for k, v in log.config.items() if k in C.FIELDS)
        try:   # whole, as train.py exec()s it: its helper names (depth = 2; n_layer = depth) read in order
            log.config.update(C.parse_nanogpt_py(known_text + "\n" + text))
            return
        except C.ConfigError:
            pass   # then line by line: what can be read is taken, the rest recorded
        try:
            stmts = ast.parse(text).body
        except C.UNPARSABLE:
            stmts = []
            for line in text.splitlines():
                try:
                    stmts += ast.parse(line).body
                except C.UNPARSABLE:
                    continue
        for stmt in stmts:
            segment = ast.unparse(stmt)
            try:
                values = C.parse_nanogpt_py(known_text + "\n" + segment)
            except C.ConfigError:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    log.config_unknown[stmt.targets[0].id] = ast.unparse(stmt.value)
                else:
                    log.config_unknown[segment[:40]] = segment
                continue
            log.config.update(values)
            known_text += "\n" + segment


def is_text(head: bytes) -> bool:
    """Whether a file's first bytes read as text in the encoding a log's reader would take (its
    byte-order mark's, else UTF-8): not binary data, allowing the odd byte of another encoding."""
    encoding = next((name for bom, name in BOMS if head.startswith(bom)), "utf-8")
    text = head.decode(encoding, errors="replace")
    return text.count("\ufffd") + text.count("\x00") <= max(2, len(text) // 100)


def _assigns(text: str) -> bool:
    return any(re.match(r"\s*\w+\s*=", line) for line in text.splitlines())


def stock_config(path: str | None) -> dict[str, Any] | None:
    """The values of nanoGPT's own config/NAME.py (its stock configs), else None."""
    if not path:
        return None
    parts = path.replace("\\", "/").split("/")
    name = parts[-1]
    if len(parts) > 1 and parts[-2] != "config":
        return None
    values = STOCK_CONFIGS.get(name.removesuffix(".py"))
    return dict(values) if values is not None else None


def _ends_echo(line: str) -> bool:
    return bool(TPI_RE.match(line) or OVERRIDE_FILE_RE.match(line) or OVERRIDE_KV_RE.match(line)
                or STEP_RE.search(line) or ITER_RE.search(line) or KNOWN_RE.match(line)
                or PARAMS_RE.match(line) or RESUME_RE.match(line))


def _count(text: str, limit: int = MAX_COUNT) -> int:
    """An iteration or a count as printed; one no run reaches makes the line stray (ValueError)."""
    n = int(text)
    if n >= limit:
        raise ValueError(f"{text[:20]}...: beyond any run")
    return n


def _positive(text: str) -> float:
    x = float(text)
    if not 0 < x <= MAX_REAL:
        raise ValueError(f"{text[:20]}: not a positive figure")
    return x


def _loss(text: str) -> float:
    """A printed loss as it is: nan and inf (a diverged run) stay nan and inf, for the doctor to
    report and export to keep; a figure beyond any loss (1e999 reads as inf already) is inf."""
    x = float(text)
    return x if not math.isfinite(x) or abs(x) <= MAX_REAL else math.copysign(math.inf, x)


def _figure(text: str) -> float | None:
    """A printed time or mfu; None when it is not a finite figure."""
    x = float(text)
    return x if math.isfinite(x) and abs(x) <= MAX_REAL else None


def line_prefix(lines: list[str]) -> re.Pattern[str] | None:
    """What every line of the log begins with, where a tool put it there: torchrun's `[default0]:`,
    a timestamp from `ts` or `docker logs -t`; as a pattern (runs of digits or letters stand for any
    such run: the time changes from line to line), judged on the first PREFIX_SAMPLE eval and iteration
    lines. None where most of those begin with the record itself."""
    records = (m.start() and line[:m.start()] for line in lines if (m := STEP_RE.search(line) or ITER_RE.search(line)))
    shapes = Counter(_shape(prefix) if prefix else "" for prefix in itertools.islice(records, PREFIX_SAMPLE))
    if not shapes:
        return None
    shape, n = shapes.most_common(1)[0]
    return re.compile(shape) if shape and n >= PREFIXED * sum(shapes.values()) else None


def _shape(prefix: str) -> str:
    return "".join(r"\d+" if run[0].isdigit() else "[A-Za-z]+" if run[0].isalpha() else re.escape(run)
                   for run in re.findall(r"\d+|[A-Za-z]+|[^\dA-Za-z]", prefix))


def parse(text: str) -> NanogptLog:
    lines = _LogText()
    lines.take(text)
    return lines.log()


class _LogText:
    """A log's text to the parser, line by line, as it comes: a line not yet ended waits for its end;
    the lines' prefix (`line_prefix`) is settled by the first piece that holds a record, and the lines
    read before it (a header) are read again without it."""

    def __init__(self) -> None:
        self.parser = _Parser()
        self.partial = ""                   # a line not yet ended
        self._prefix: re.Pattern[str] | None = None
        self._prefix_known = False
        self._before: list[str] = []        # the lines read before the first record
        self._emitted = 0
        self.ended: list[str] = []          # the lines the last piece ended, as the log has them

    def take(self, text: str) -> list[dict]:
        """The events of the lines this text ends."""
        lines = (self.partial + text).splitlines(keepends=True)
        self.partial = lines.pop() if lines and not lines[-1].endswith("\n") else ""   # (a CR may have its LF next)
        lines = self.ended = [line.rstrip("\r\n") for line in lines]
        if not self._prefix_known:
            if not any(STEP_RE.search(line) or ITER_RE.search(line) for line in lines):
                self._before += lines[:BEFORE_RECORDS - len(self._before)]
            else:
                self._prefix, self._prefix_known = line_prefix(lines), True
                if self._prefix is not None and self._before:   # the header, read before: again, unprefixed
                    self.parser, lines = _Parser(), self._before + lines
                self._before = []
        self.parser.feed(self._unprefixed(lines))
        events = self.parser.log.events[self._emitted:]
        self._emitted = len(self.parser.log.events)
        return events

    def log(self, whole: bool = True) -> NanogptLog:
        """What the text says so far; `whole`: its last line too where it has no end."""
        if whole and self.partial:
            self.parser.feed(self._unprefixed([self.partial]))
            self.partial = ""
            self._emitted = len(self.parser.log.events)
        return self.parser.finish()

    def _unprefixed(self, lines: list[str]) -> list[str]:
        if self._prefix is None:
            return lines
        return [line[m.end():] if (m := self._prefix.match(line)) else line for line in lines]


class LogReader:
    """A log file read as it grows (`gpttui open` follows a train.py that still writes it): each
    `read()` parses the lines completed since the last one (`_LogText`) and returns the events they
    made; `log()` is what the log says so far. The encoding is settled by the first read: its
    byte-order mark (BOMS), else UTF-8, bytes that are not replaced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0                     # bytes read
        self._text = _LogText()
        self._decoder: codecs.IncrementalDecoder | None = None

    def read(self) -> list[dict]:
        """The events of the lines completed since the last read. Raises OSError."""
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < self.offset:   # written anew (`> log.txt` again): from its start
                self.offset, self._text.partial, self._decoder = 0, "", None
            f.seek(self.offset)
            data = f.read()
        if self._decoder is None:
            if len(data) < 4 and data[:1] in (b"\xef", b"\xff", b"\xfe", b"\x00"):
                return []   # not enough yet to tell a byte-order mark
            encoding = next((name for bom, name in BOMS if data.startswith(bom)), "utf-8")
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.offset += len(data)
        return self._text.take(self._decoder.decode(data))

    @property
    def lines(self) -> list[str]:
        """The lines the last read completed, as the log has them (what `tail -f` would have shown)."""
        return self._text.ended

    def error(self) -> dict | None:
        """The error event of the traceback the log ends on so far (`_Parser.error_event`)."""
        return self._text.parser.error_event()

    def log(self, whole: bool = True) -> NanogptLog:
        """What the log says so far; `whole`: its last line too where it has no end (a file read
        whole; one still being written may be mid-line)."""
        return self._text.log(whole)
