"""The config editor: every field by group, validated as you type, beside the figures it implies.

Used from the dashboard (key c) on a run, or standalone to try a config:

    python -m gpttui.screens.config config/train_fineweb.py

It dismisses with a ConfigChange (or None): LIVE changes go to the engine's `set` command,
RESTART ones need a restart from the checkpoint, NEW_RUN starts a run from its `config`.
Saving as TOML happens here and keeps the editor open. What the form's texts mean is
analysis/config_edit.py's business; this module only shows it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from gpttui.analysis.config_edit import (
    ApplyAction,
    ApplyPlan,
    ConfigChange,
    changed_fields,
    check_fields,
    figures,
    format_value,
    new_run_problem,
    plan_apply,
)
from gpttui.run import config as C
from gpttui.run import layout, sizing
from gpttui.screens.controller import RunController
from gpttui.widgets.system import device_memory

NARROW = 110   # below this many columns the help column gives way to the focused field's help line
SIDE_PANELS = ("#problems", "#warnings", "#figures")   # each takes no room while empty


def grouped_fields() -> dict[str, list[str]]:
    """The fields of each group, groups in the form's order."""
    return {g: [n for n, f in C.FIELDS.items() if f.metadata["group"] == g] for g in C.GROUPS}


def field_texts(config: C.TrainConfig) -> dict[str, str]:
    """Each field of `config` as its input shows it."""
    return {n: format_value(getattr(config, n)) for n in C.FIELDS}


class FieldEditor(Input):
    """The form's one input, laid over the row of the field it edits (`field`). One input for all
    the fields, the others' values drawn as text: opening the editor costs a few widgets, not an
    input per field."""

    @dataclass
    class Edited(Message):
        """`field`'s text is now `value` (named as it changes: a move right after can't take it
        to another field)."""

        field: str
        value: str

    field = ""

    def show(self, field: str, text: str, row: int) -> None:
        """Edit `field` (its text selected, so what is typed replaces it), over row `row`."""
        self.field = field
        self.value = text
        self.select_all()
        self.styles.offset = (0, row)

    def watch_value(self, value: str) -> None:
        self.post_message(self.Edited(self.field, value))


@dataclass
class FieldPicked(Message):
    """A field's value was clicked."""

    field: str


class GroupValues(Static):
    """A group's values, one line each (the editor lies over the one being edited)."""

    def __init__(self, group: str, names: list[str]) -> None:
        super().__init__(id=f"values-{group}", classes="values", markup=False)
        self.names = names

    def on_click(self, event: events.Click) -> None:
        if 0 <= event.y < len(self.names):
            self.post_message(FieldPicked(self.names[event.y]))


class ConfigScreen(Screen[ConfigChange | None]):
    """Edit a config. With `live`, the config is an existing run's and Apply changes that run."""

    CSS_PATH = "config.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+r", "apply", "Apply to run"),
        Binding("ctrl+n", "new_run", "New run"),
        Binding("ctrl+s", "save", "Save TOML"),
        Binding("ctrl+o", "open", "Open file"),
        Binding("down", "move(1)", "Next field", show=False, priority=True),
        Binding("up", "move(-1)", "Previous field", show=False, priority=True),
    ]

    def __init__(self, loaded: C.LoadedConfig, *, live: bool = False,
                 measured_ms_per_iter: float | None = None, device_memory_bytes: int | None = None,
                 current_iter: int | None = None) -> None:
        super().__init__()
        self.loaded = loaded
        self.live = live
        self.measured_ms_per_iter = measured_ms_per_iter
        self.device_memory_bytes = device_memory_bytes
        self.current_iter = current_iter
        self.origin = loaded.config  # results' `changes` are counted against this
        self.base = loaded.config    # rows are marked changed against this (an opened file's when not live)
        self.texts = field_texts(self.base)   # what the inputs hold
        self.check = check_fields(self.texts, self.base)
        self.plan: ApplyPlan | None = None
        self.groups = grouped_fields()
        self.names = [n for names in self.groups.values() for n in names]   # the form's order
        self.rows: dict[str, int] = {}   # each field's line in the form
        row = 0
        for names in self.groups.values():
            row += 2   # the group's blank line and heading
            for name in names:
                self.rows[name], row = row, row + 1
        self._reopened = False   # refill the form from `base` when shown again (reopen_for)
        self.ready = asyncio.Event()   # set once a field has focus: the opener holds keys till then
        self._enabled: tuple[bool | None, bool | None] | None = None
        self._shown: dict[str, Text] = {}
        self._status_error = False

    @classmethod
    def for_run(cls, run: RunController) -> ConfigScreen:
        """The editor on the run a controller shows: live once the run has an engine or a checkpoint."""
        live = run.engine_alive or (run.run_dir / layout.CKPT).exists()
        return cls(dataclasses.replace(run.loaded, config=run.config), live=live,
                   measured_ms_per_iter=run.ms_per_iter, current_iter=run.live.iter if live else None,
                   device_memory_bytes=device_memory(run.live.hello.get("device") or run.config.device))

    def reopen_for(self, run: RunController) -> bool:
        """Show the run as it is now in this editor, kept from an earlier use (building the form
        again costs far more than refilling it); False when it can't serve this run (another run
        directory, or the run became live or stopped being so: the buttons differ)."""
        live = run.engine_alive or (run.run_dir / layout.CKPT).exists()
        if live != self.live or run.config.out_dir != self.origin.out_dir \
                or self in self.app.screen_stack:
            return False
        self.loaded = dataclasses.replace(run.loaded, config=run.config)
        self.origin = self.base = run.config
        self.measured_ms_per_iter = run.ms_per_iter
        self.current_iter = run.live.iter if live else None
        self._reopened = True
        self.ready.clear()
        return True

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title", markup=False)
        with Horizontal(id="body"):
            # three columns (names, values, help), one line per field; one input, over the field it edits
            with VerticalScroll(id="form"), Horizontal(id="fields"):
                yield Static(id="names")
                with Vertical(id="inputs"):
                    for group, names in self.groups.items():
                        yield GroupValues(group, names)
                    yield FieldEditor(id="edit", compact=True)
                yield Static(self._helps(), id="helps")
            with VerticalScroll(id="side"):
                yield Static(id="problems")
                yield Static(id="warnings")
                yield Static(id="figures")
        yield Static("", id="field-help", markup=False)
        with Horizontal(id="filebar"):
            yield Label("file", classes="name")
            yield Input(self.loaded.source or "", id="path", compact=True,
                        placeholder="a nanoGPT .py, a .toml or a run directory")
            yield Button("Open", id="open", compact=True)
            yield Button("Save TOML", id="save", compact=True)
        yield Static("", id="status", markup=False)
        with Horizontal(id="actions"):
            yield Static("", id="spacer")
            if self.live:
                yield Button("Apply", id="apply", variant="primary", compact=True)
            yield Button("New run", id="new-run", compact=True)
            yield Button("Cancel", id="cancel", compact=True)
        yield Footer()

    def _title(self) -> str:
        src = f" (from {Path(self.loaded.source).name})" if self.loaded.source else ""
        if self.live:
            at = f", iteration {self.current_iter:,} when opened" if self.current_iter is not None else ""
            return f"Config of the run in {self.base.out_dir}{at}{src}"
        return f"Config{src}"

    @property
    def editor(self) -> FieldEditor:
        return self.query_one("#edit", FieldEditor)

    def on_mount(self) -> None:
        self.edit(self.names[0])   # keys typed right after c go there
        self._recompute()
        self.ready.set()
        self.set_class(self.size.width < NARROW, "-narrow")

    def on_screen_resume(self) -> None:
        if not self._reopened:
            return
        self._reopened = False
        self.texts = field_texts(self.base)
        self.query_one("#title", Static).update(self._title())
        self.query_one("#path", Input).value = self.loaded.source or ""
        self._status("")
        self._shown.clear()
        self.edit(self.names[0])   # as on a first open
        self._recompute()
        self.query_one("#form", VerticalScroll).scroll_home(animate=False)
        self.ready.set()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def _helps(self) -> Text:
        """The help column: default and meaning of each field, aligned with the inputs."""
        t = Text(no_wrap=True, overflow="ellipsis")
        for names in self.groups.values():
            t.append("\n\n")
            for name in names:
                default = format_value(getattr(C.DEFAULTS, name)) or "''"
                t.append(f"default {default} · {C.FIELDS[name].metadata['help']}\n", style="dim")
        return t

    @property
    def problems(self) -> dict[str, list[str]]:
        """What is wrong with each field: as a config, or (live) as a change to the run."""
        if self.plan is None:
            return self.check.problems
        return {**self.check.problems, **self.plan.problems}

    def _names(self) -> Text:
        """The name column: changed fields marked, invalid ones in red with a ✗."""
        problems, config = self.problems, self.check.config
        t = Text(no_wrap=True)
        for group, names in self.groups.items():
            t.append("\n" + (group.upper() if group == "io" else group.capitalize()) + "\n", style="bold cyan")
            for name in names:
                if name in problems:
                    t.append(f"✗ {name}\n", style="bold red")
                elif getattr(config, name) != getattr(self.base, name):
                    t.append(f"* {name}\n", style="bold yellow")
                else:
                    t.append(f"  {name}\n")
        return t

    # ------------------------------------------------------------------ validation and figures

    def _values(self, names: list[str]) -> Text:
        """A group's values, one a line, the invalid ones in red."""
        problems = self.problems
        return Text("\n").join(Text(self.texts[n], style="red" if n in problems else "") for n in names)

    def on_field_editor_edited(self, event: FieldEditor.Edited) -> None:
        if event.field not in self.texts or self.texts[event.field] == event.value:
            return   # the editor put on a field (its own text): nothing new
        self.texts[event.field] = event.value
        self._recompute()
        if self._status_error and self.check.ok:
            self._status("")  # "fix the marked fields" no longer holds

    def _recompute(self) -> None:
        self.check = check = check_fields(self.texts, self.base)
        self.plan = plan_apply(self.base, check.config, self.current_iter) if self.live and check.ok else None
        self._fill("#names", self._names())
        for group, names in self.groups.items():
            self._fill(f"#values-{group}", self._values(names))
        self._show_field_help()
        try:   # the sizes need the data's vocabulary: a meta.pkl that can't be read is said in their place
            self._fill("#figures", figures(
                check.config, self.base, measured_ms_per_iter=self.measured_ms_per_iter,
                device_memory_bytes=self.device_memory_bytes))
            warnings = sizing.config_warnings(check.config, self.loaded.source_text, self.loaded.source)
        except C.ConfigError as e:
            self._fill("#figures", Text(str(e), style="bold red"))
            warnings = []
        self._fill("#warnings", Text("\n".join(f"⚠ {w}" for w in warnings), style="bold yellow"))
        self._fill("#problems", self._problems_text())
        if self.live:
            apply = self.query_one("#apply", Button)
            action = self.plan.action if self.plan else None
            apply.disabled = action is None
            apply.label = ("Apply live" if action is ApplyAction.LIVE else
                           "Restart from checkpoint" if action is ApplyAction.RESTART else "Apply")
        self.query_one("#new-run", Button).disabled = not check.ok
        enabled = (self.check_action("apply", ()), self.check_action("new_run", ()))
        if enabled != self._enabled:  # the footer redraws every key on refresh_bindings: only when needed
            self._enabled = enabled
            self.refresh_bindings()

    def _fill(self, selector: str, text: Text) -> None:
        """Show `text` in a column or a side panel (a relayout only when it differs from what is
        shown)."""
        if self._shown.get(selector) == text:
            return
        self._shown[selector] = text
        widget = self.query_one(selector, Static)
        widget.update(text)
        if selector in SIDE_PANELS:
            widget.set_class(bool(text.plain.strip()), "-filled")
            widget.display = bool(text.plain.strip())

    def _problems_text(self) -> Text:
        t = Text()
        if not self.check.ok:
            t.append("Can't be applied:\n", style="bold red")
            for line in self.check.lines:
                t.append(f" ✗ {line}\n", style="red")
            return t
        if self.plan is not None:
            if self.plan.refusals:
                t.append("Can't apply to this run:\n", style="bold red")
                for line in self.plan.refusals:
                    t.append(f" ✗ {line}\n", style="red")
            elif self.plan.action:
                how = ("ctrl+r applies these now, while the run trains:" if self.plan.action is ApplyAction.LIVE
                       else "ctrl+r restarts the run from its checkpoint with:")
                t.append(how + "\n", style="bold green")
                for name, value in self.plan.changes.items():
                    t.append(f" {name}: {format_value(getattr(self.base, name))} → {format_value(value)}\n")
        return t

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            if not self.live:
                return False
            return True if self.plan is not None and self.plan.action else None
        if action == "new_run":
            return True if self.check.ok else None
        return True

    # ------------------------------------------------------------------ focus and help

    def _show_field_help(self) -> None:
        """The edited field in full: its help, default, whether it changes live, its problem."""
        name = self.editor.field
        meta = C.FIELDS[name].metadata
        live = " · changes live" if name in C.LIVE_FIELDS else ""
        t = Text(f"{name} ({meta['group']}): {meta['help']} · default "
                 f"{format_value(getattr(C.DEFAULTS, name))}{live}")
        problems = self.problems.get(name)
        if problems:
            t.append("\n✗ " + "; ".join(problems), style="bold red")
        self.query_one("#field-help", Static).update(t)

    def edit(self, name: str) -> None:
        """Put the editor on field `name`, focused, its text selected (typing replaces it)."""
        editor = self.editor
        editor.show(name, self.texts[name], self.rows[name])
        # at once, not after a refresh as widget.focus() does: keys typed right after go there
        self.set_focus(editor, scroll_visible=False)
        self._show_field_help()
        # the row in view (a region of the form: the editor itself is only placed on the next refresh)
        self.query_one("#form", VerticalScroll).scroll_to_region(
            Region(0, self.rows[name], 1, 1), animate=False, immediate=True, x_axis=False)

    def action_move(self, step: int) -> None:
        # a priority binding runs before the editor has taken the keys typed ahead of it: the
        # move waits behind them in the editor's queue, so each key lands in its own field
        self.editor.call_later(self._move, step)

    def _move(self, step: int) -> None:
        names = self.names
        if self.focused is self.editor:
            i = (names.index(self.editor.field) + step) % len(names)
        else:
            i = 0 if step > 0 else len(names) - 1
        self.edit(names[i])

    def on_field_picked(self, event: FieldPicked) -> None:
        self.edit(event.field)

    @on(Input.Submitted, "#edit")
    def _next_field(self) -> None:
        self.action_move(1)

    # ------------------------------------------------------------------ actions

    def _status(self, message: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(message, style="bold red" if error else "green"))
        status.display = bool(message)
        self._status_error = error

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.plan is None or self.plan.action is None:
            self._status("nothing to apply" if self.plan and not self.plan.refusals and self.check.ok
                         else "fix the marked fields first", error=True)
            return
        self.dismiss(ConfigChange(self.plan.changes, self.plan.action, self.check.config))

    @on(Button.Pressed, "#new-run")
    def action_new_run(self) -> None:
        problem = new_run_problem(self.check.config) if self.check.ok else "fix the marked fields first"
        if problem:
            self._status(problem, error=True)
            return
        changes = changed_fields(self.origin, self.check.config)
        self.dismiss(ConfigChange(changes, ApplyAction.NEW_RUN, self.check.config))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            self._status("type the .toml path to save to, then ctrl+s", error=True)
            self.query_one("#path", Input).focus()
            return
        path = Path(text).expanduser()
        if path.is_dir():
            path = path / layout.CONFIG
        if path.suffix != ".toml":
            self._status(f"save writes TOML: give a path ending in .toml (e.g. {path.with_suffix('.toml')})",
                         error=True)
            return
        if not self.check.ok:
            self._status("fix the marked fields before saving", error=True)
            return
        try:
            C.save(self.check.config, path)
        except OSError as e:
            self._status(f"{path}: cannot write: {e.strerror or e}", error=True)
            return
        self.query_one("#path", Input).value = str(path)
        self._status(f"saved {path}")

    def action_open(self) -> None:
        path_input = self.query_one("#path", Input)
        if self.focused is not path_input:
            path_input.focus()
            self._status("type a config path (nanoGPT .py, .toml or run directory) and press Enter")
            return
        self._open()

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#open")
    def _open(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            self._status("type a config path (nanoGPT .py, .toml or run directory) first", error=True)
            return
        try:
            loaded = C.load(Path(text).expanduser())
        except C.ConfigError as e:
            self._status(str(e), error=True)
            return
        self.loaded = loaded
        if not self.live:
            self.base = loaded.config
        self.texts = field_texts(loaded.config)
        field = self.editor.field
        self.editor.show(field, self.texts[field], self.rows[field])   # (the focus stays on the path)
        self.query_one("#title", Static).update(self._title())
        self._recompute()
        self._status(f"opened {loaded.source}")


def main(argv: list[str] | None = None) -> int:
    """Try the editor on a file; prints what it was dismissed with as JSON."""
    import argparse
    import json
    import sys

    from textual.app import App

    p = argparse.ArgumentParser(prog="python -m gpttui.screens.config", description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", help="nanoGPT .py config, .toml config or run directory")
    p.add_argument("--live", action="store_true", help="treat it as a running run's config")
    p.add_argument("--ms-per-iter", type=float, help="a measured time per iteration")
    args = p.parse_args(argv)
    try:
        loaded = C.load(args.file)
    except C.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: list[ConfigChange | None] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ConfigScreen(loaded, live=args.live, measured_ms_per_iter=args.ms_per_iter), self.done)

        def done(self, result: ConfigChange | None) -> None:
            results.append(result)
            self.exit()

    Host().run()
    if results and results[0] is not None:
        r = results[0]
        print(json.dumps({"changes": r.changes, "action": r.action, "config": r.config.to_dict()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
