"""Every key of the dashboard, with what it does."""

from __future__ import annotations

from rich.table import Table
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

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        """`keys`: (the keys as shown, what they do), in the order to list them."""
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))   # a long description wraps in its own column
        keys.add_column(justify="right", style="bold cyan", no_wrap=True)
        keys.add_column()
        for shown, what in self.keys:
            keys.add_row(shown, what)
        with VerticalScroll(id="help"):
            yield Static("[b]gpttui keys[/]  (Esc to close)\n")
            yield Static(keys)
            yield Static("\n[b]ctrl+p[/]  every one of these by name (the command palette); a click on a key in "
                         "the footer does what the key does")
            yield Static("\n" + CHART_HELP)
