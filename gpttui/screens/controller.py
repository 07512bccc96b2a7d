"""How screens and the app talk: the one interface a screen reads the run through, and the
messages it sends for what it wants done.

A screen gets a `RunController` when it is made and only reads it. To change anything (pause,
stop, apply a config, open a run) it posts one of the intent messages below; they bubble to the
app, which hands them to its controller. The app tells screens that the run moved on with
`RunUpdated`, and never calls into a screen. Two controllers implement this: `EngineRun` in
app.py trains a run, `ReadOnlyRuns` in viewer.py only reads runs (its `read_only` is True and the
screens offer no key that would control a run).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from textual.message import Message

from gpttui.analysis.config_edit import ApplyAction
from gpttui.analysis.live import LiveRun
from gpttui.run import config as C
from gpttui.run.history import RunHistory

LOG_LINES = 1000  # the log pane's length; metrics.jsonl and engine.log keep everything


class LogLines:
    """The log pane's lines, kept by the controller so a dashboard made later shows them too."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.total = 0   # lines ever written: a reader's position survives the bound

    def write(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self.total += len(lines)

    def since(self, position: int) -> list[str]:
        """The lines written after a reader had seen `position` of them (those still kept)."""
        new = min(self.total - position, len(self.lines))
        return list(self.lines)[len(self.lines) - new:] if new > 0 else []


class RunController(Protocol):
    """What a screen may read about the run it shows."""

    run_dir: Path
    loaded: C.LoadedConfig       # the config as loaded (its source text feeds the size warnings)
    header_note: str             # e.g. "demo", "read-only"
    read_only: bool              # True: nothing here controls a run (`gpttui open`)
    stopping: bool               # a stop was sent: the engine saves its checkpoint, then exits
    log: LogLines

    @property
    def live(self) -> LiveRun: ...

    @property
    def history(self) -> RunHistory: ...

    @property
    def config(self) -> C.TrainConfig:
        """The run's config as its engine has it now (live changes included)."""
        ...

    @property
    def ms_per_iter(self) -> float | None: ...

    @property
    def engine_alive(self) -> bool: ...

    @property
    def can_resume(self) -> bool: ...

    @property
    def display_state(self) -> str:
        """The state the status line shows ("loading", "running", "nanoGPT log", ...)."""
        ...

    @property
    def pending(self) -> str:
        """A command sent whose effect is not seen yet ("pausing…"), or ""."""
        ...


class LiveRunReads:
    """What every controller derives the same way from the run on view (`live`) and its
    config as loaded (`loaded`): the part of RunController that needs no engine."""

    live: LiveRun
    loaded: C.LoadedConfig

    @property
    def history(self) -> RunHistory:
        return self.live.history

    @property
    def config(self) -> C.TrainConfig:
        """The run's config as the engine has it now (live changes included)."""
        return self.live.train_config() or self.loaded.config

    @property
    def ms_per_iter(self) -> float | None:
        return self.live.ms_per_iter


# ---------------------------------------------------------------- the app to its screens

@dataclass
class RunUpdated(Message, bubble=False):
    """The run moved on: redraw what changed. `force`: at once, past the panels' rate limits."""

    force: bool = False

    def can_replace(self, message: Message) -> bool:
        # a screen busy drawing skips updates it has not got to (a forced one only for another)
        return isinstance(message, RunUpdated) and (message.force or not self.force)


@dataclass
class DisplayFailed(Message):
    """A screen could not redraw; the app records it and says so once (the run goes on)."""

    error: str
    traceback: list[str]


# ---------------------------------------------------------------- intents: a screen to the app

class Intent(Message):
    """Something a screen wants done to the run; the app passes it to its controller."""


@dataclass
class SendCommand(Intent):
    """Send the engine a protocol command (pause, resume, save, eval); `pending` shows meanwhile."""

    command: str
    pending: str = ""


class StopRun(Intent):
    """Save a checkpoint and stop the engine (the screen has asked the user first)."""


class ResumeRun(Intent):
    """Start the engine again, from the run's checkpoint if it has one."""


@dataclass
class ApplyConfig(Intent):
    """Config changes from the config or extend screen (`changes` against the run's config)."""

    changes: dict[str, Any]
    action: ApplyAction


class QuitApp(Intent):
    """Quit (a live engine is asked about first: stop and save, or detach)."""


@dataclass
class OpenRun(Intent):
    """Show run `index` of those opened in the dashboard (the compare screen's Enter)."""

    index: int
