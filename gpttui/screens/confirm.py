"""A question with a few answers: y / n, or Enter on the highlighted default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static
from textual.widgets.button import ButtonVariant

T = TypeVar("T")


@dataclass
class Choice(Generic[T]):
    value: T            # what the screen dismisses with
    label: str
    key: str = ""       # a key that picks it at once (y, n, d ...)
    variant: ButtonVariant = "default"


class ConfirmScreen(ModalScreen[T | None], Generic[T]):
    """Dismisses with the chosen Choice.value, or None on Escape (same as the 'n' choice)."""

    CSS_PATH = "confirm.tcss"

    BINDINGS = [
        Binding("escape", "dismiss_none", "Cancel", show=False),
        Binding("left,shift+tab", "app.focus_previous", show=False),
        Binding("right,tab", "app.focus_next", show=False),
    ]

    def __init__(self, title: str, message: str, choices: list[Choice[T]], default: int = 0) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.choices = choices
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="question")
            yield Static(self.message, id="message")
            with Horizontal(id="buttons"):
                for i, c in enumerate(self.choices):
                    label = f"{c.label} ({c.key})" if c.key else c.label
                    yield Button(label, id=f"choice-{i}", variant=c.variant)

    def on_mount(self) -> None:
        self.query_one(f"#choice-{self.default}", Button).focus()

    def on_key(self, event: events.Key) -> None:
        for c in self.choices:
            if c.key and event.key == c.key:
                event.stop()
                self.dismiss(c.value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.choices[int((event.button.id or "").removeprefix("choice-"))].value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
