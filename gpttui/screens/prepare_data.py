"""A run's data directory has no train.bin: prepare it here, from a path the user types (or the
demo's bundled text), showing `gpttui prepare`'s progress. The work runs on a thread. Data that
gpttui prepare did not make (a nanoGPT meta.pkl, a lone val.bin) is replaced only when the user
says so, as `gpttui prepare --force`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from gpttui.widgets import fmt

if TYPE_CHECKING:
    from gpttui.data.prepare import ProgressInfo


class Cancelled(Exception):
    pass


class PrepareScreen(ModalScreen[bool]):
    """Dismisses True once train.bin and val.bin exist, False if the user gives up."""

    CSS_PATH = "prepare_data.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, data_dir: Path, source: Path | None = None, tokenizer: str = "gpt2") -> None:
        """`source`: prepare from it at once; None: ask the user for paths."""
        super().__init__()
        self.data_dir = data_dir
        self.source = source
        self.tokenizer = tokenizer
        self._cancel = False
        self._busy = False
        self._asked: tuple[list[str], str] | None = None   # the sources and tokenizer last tried

    def compose(self) -> ComposeResult:
        with Vertical(id="prepare"):
            yield Label(f"No training data in {self.data_dir}", id="title")
            if self.source is None:
                yield Static("Prepare it now: give text, jsonl or parquet files (paths or globs, "
                             "separated by spaces).")
                yield Input(placeholder="e.g. input.txt  or  fineweb/*.parquet", id="source")
                with Horizontal(id="row"):
                    yield Label("tokenizer ")
                    yield Select([("GPT-2 BPE", "gpt2"), ("characters", "char")], value=self.tokenizer,
                                 allow_blank=False, id="tokenizer")
                    yield Button("Prepare", variant="primary", id="go")
            else:
                yield Static(f"Preparing {self.source.name} with the {self.tokenizer} tokenizer…")
            yield ProgressBar(total=100, show_eta=False, id="bar")
            yield Static("", id="info")
            force = Button("Replace (--force)", variant="error", id="force")
            force.display = False   # shown when the directory holds data of someone else's
            yield force

    def on_mount(self) -> None:
        if self.source is not None:
            self._start([str(self.source)], self.tokenizer)
        else:
            self.query_one("#source", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._go()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self._go()
        elif event.button.id == "force" and not self._busy and self._asked is not None:
            self._start(*self._asked, force=True)

    def _go(self) -> None:
        if self._busy:
            return
        sources = self.query_one("#source", Input).value.split()
        if not sources:
            self.query_one("#info", Static).update("[red]type a path first[/]")
            return
        self._start(sources, str(self.query_one("#tokenizer", Select).value))

    def _start(self, sources: list[str], tokenizer: str, force: bool = False) -> None:
        self._busy = True
        self._asked = (sources, tokenizer)
        self.query_one("#force", Button).display = False
        self.query_one("#info", Static).update("starting…")
        self._prepare(sources, tokenizer, force)

    @work(thread=True, exclusive=True)
    def _prepare(self, sources: list[str], tokenizer: str, force: bool) -> None:
        from gpttui.data.prepare import ForeignData, PrepareError, prepare

        def progress(p: ProgressInfo) -> None:
            if self._cancel:
                raise Cancelled()
            self.app.call_from_thread(self._show, p)

        try:
            result = prepare(sources, self.data_dir, tokenizer=tokenizer, force=force, progress=progress)
        except Cancelled:
            self.app.call_from_thread(self.dismiss, False)
            return
        except ForeignData as e:
            self.app.call_from_thread(self._failed, str(e), True)
            return
        except (PrepareError, OSError) as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._done, result.tokens)

    def _show(self, p: ProgressInfo) -> None:
        self.query_one("#bar", ProgressBar).update(progress=100 * p.fraction)
        self.query_one("#info", Static).update(
            f"{p.phase}: {p.documents:,} documents, {fmt.count(p.tokens)} tokens, "
            f"{p.mb_per_s:.1f} MB/s, ETA {fmt.duration(p.eta_s)}")

    def _failed(self, message: str, forceable: bool = False) -> None:
        self._busy = False
        self.query_one("#info", Static).update(Text(message, style="red"))   # a path may hold [ ]
        self.query_one("#force", Button).display = forceable

    def _done(self, tokens: dict[str, int]) -> None:
        self.query_one("#bar", ProgressBar).update(progress=100)
        self.app.notify(f"data ready: {fmt.count(tokens.get('train'))} train, "
                        f"{fmt.count(tokens.get('val'))} val tokens", timeout=4)
        self.dismiss(True)

    def action_cancel(self) -> None:
        if self._busy:
            self._cancel = True
        else:
            self.dismiss(False)
