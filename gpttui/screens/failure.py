"""The engine failed: its error and traceback, the last checkpoint, and a key to resume from it."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from enum import Enum

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static


@dataclass
class Failure:
    message: str
    exit_code: int | None = None
    traceback: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    checkpoint_iter: int | None = None   # None: no checkpoint to resume from


def exit_text(code: int | None) -> str:
    """How the engine ended, in words: a signal by name (a negative code), with what a SIGKILL
    nobody sent usually is."""
    if code is None:
        return ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"killed by signal {-code}"
        hint = " — possibly out of memory" if -code == signal.SIGKILL else ""   # the kernel's OOM killer sends it
        return f"killed by {name}{hint}"
    return f"exit code {code}"


class FailureChoice(Enum):
    RESUME = "resume"   # start the engine again from the last checkpoint
    BACK = "back"       # look at the dashboard
    QUIT = "quit"


class FailureScreen(ModalScreen[FailureChoice]):
    CSS_PATH = "failure.tcss"
    BINDINGS = [
        Binding("r", "choose('resume')", "Resume from checkpoint"),
        Binding("escape,enter", "choose('back')", "Back to dashboard"),
        Binding("q", "choose('quit')", "Quit"),
    ]

    def __init__(self, failure: Failure) -> None:
        super().__init__()
        self.failure = failure

    def compose(self) -> ComposeResult:
        f = self.failure
        with Vertical(id="failure"):
            how = exit_text(f.exit_code)
            yield Label(f"The engine stopped: {how}" if how else "The engine stopped with an error", id="title")
            yield Static(Text(f.message, style="bold red"), id="message")
            if f.checkpoint_iter is not None:
                where = f"Last checkpoint: iteration {f.checkpoint_iter:,}. Press r to resume from it."
            else:
                where = "No checkpoint was written yet: r starts the run again from scratch."
            yield Static(where, id="checkpoint")
            with VerticalScroll(id="details") as self._details:
                if f.traceback:
                    yield Static(Text(f.traceback.rstrip()), classes="traceback")
                if f.stderr_tail:
                    yield Label("last lines of the engine's log:", classes="dim")
                    yield Static(Text("\n".join(f.stderr_tail)), classes="stderr")
        yield Footer()

    def on_mount(self) -> None:
        # the log's last lines are what tells why: in view from the start (the traceback is above).
        # The widget itself, not a query: under load a query here once found it not yet in the DOM.
        self.call_after_refresh(self._details.scroll_end, animate=False)

    def action_choose(self, what: str) -> None:
        self.dismiss(FailureChoice(what))
