"""Every key of the dashboard, with what it does."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

CHART_HELP = (
    "The chart draws each step's loss (blue: the min and max of the steps each column "
    "covers, so spikes stay visible), its smoothed curve (yellow: a debiased exponential "
    "moving average, 0 = off) and the val loss at each eval (red dots)."
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark,enter", "dismiss", "Close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.key_bindings = bindings

    def compose(self) -> ComposeResult:
        keys = Text()
        for b in self.key_bindings:
            if b.description:
                names = " / ".join(_key_name(k) for k in b.key.split(","))
                keys.append(f"{names:>10}  ", style="bold cyan")
                keys.append(f"{b.tooltip or b.description}\n")
        with VerticalScroll(id="help"):
            yield Static("[b]gpttui keys[/]  (Esc to close)\n")
            yield Static(keys)
            yield Static("\n" + CHART_HELP)


def _key_name(key: str) -> str:
    return {"space": "space", "question_mark": "?", "left_square_bracket": "[",
            "right_square_bracket": "]"}.get(key, key)
