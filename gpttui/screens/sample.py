"""The sampling pane (key g): text from any checkpoint of the run, streamed while training goes on.

A sampler process (`python -m gpttui.engine.sample`, through gpttui.ipc.process.ProtocolProcess) starts
when the pane opens, so torch is imported while the prompt is typed. Generate sends it one
`sample` command; the text arrives as token events, drained on a timer (never per event), so
the dashboard keeps updating and the engine keeps training. The sampler reads the chosen
checkpoint once, whole, whenever the file changed, and takes one CPU thread while the run trains.
Esc cancels a sample being made (a `stop` command), or else closes the pane.

Tabs: Output (the stream), History (this session's samples) and Over time (RUN_DIR/samples.jsonl,
a fixed-prompt sample the engine writes at every checkpoint when sample_on_checkpoint is on).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static, TabbedContent, TabPane, TextArea
from textual.widgets.option_list import Option

from gpttui.ipc.process import ProtocolProcess
from gpttui.run import layout
from gpttui.screens.controller import RunController

TICK_S = 0.05
FILES_EVERY = 40  # ticks between looks at the run directory (~2 s)

# Request field -> (label in the pane, default text)
SETTINGS: dict[str, tuple[str, str]] = {
    "temperature": ("temp", "0.8"),
    "top_k": ("top-k", "200"),
    "top_p": ("top-p", "1.0"),
    "max_new_tokens": ("tokens", "500"),
    "num_samples": ("count", "1"),
    "seed": ("seed", "1337"),
}


def parse_settings(texts: dict[str, str]) -> dict[str, Any]:
    """The typed settings as Request values; ValueError names the first bad one."""
    out: dict[str, Any] = {}
    for name, text in texts.items():
        label = SETTINGS[name][0]
        t = text.strip()
        try:
            value: Any = float(t) if name in ("temperature", "top_p") else int(t)
        except ValueError:
            kind = "a number" if name in ("temperature", "top_p") else "a whole number"
            raise ValueError(f"{label}: expected {kind}, got {text!r}") from None
        out[name] = value
    if out["temperature"] < 0:
        raise ValueError("temp: must be >= 0 (0 = always the most likely token)")
    if out["top_k"] < 0:
        raise ValueError("top-k: must be >= 0 (0 = off)")
    if not 0 < out["top_p"] <= 1:
        raise ValueError("top-p: must be in (0, 1] (1 = off)")
    if out["max_new_tokens"] < 1 or out["num_samples"] < 1:
        raise ValueError("tokens and count: must be at least 1")
    return out


def list_checkpoints(run_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """The run's ckpt.pt first, then any other *.pt in the run directory, newest first.
    (The engine deletes old ckpt_<iter>.pt files as it goes: a file gone by now is skipped.)"""
    found = []
    try:
        for p in run_dir.glob("*.pt"):
            try:
                st = p.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((p, st))
    except OSError:
        return []
    found.sort(key=lambda ps: (ps[0].name != layout.CKPT, -ps[1].st_mtime))
    return found


def read_samples_jsonl(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Whole records appended since `offset`, and the offset after them (a torn last line waits).
    A file shorter than `offset` was replaced: it is read again from the start."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < offset:
                offset = 0
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            rows.append(row)
    return rows, offset + end


@dataclass
class Done:
    """A finished (or cancelled) sample of this session."""

    when: float
    ckpt: str
    iter: int
    prompt: str
    text: str
    tokens: int
    tokens_per_s: float
    settings: str
    stopped: bool

    def label(self, n: int) -> str:
        first = (self.prompt + self.text).strip().splitlines()
        head = first[0][:48] if first else ""
        mark = " (stopped)" if self.stopped else ""
        return (f"#{n} {time.strftime('%H:%M:%S', time.localtime(self.when))} {Path(self.ckpt).name} "
                f"iter {self.iter} · {self.settings} · {self.tokens} tok{mark} · {head}")


def sampler_argv() -> list[str]:
    return [sys.executable, "-m", "gpttui.engine.sample"]


class SampleScreen(Screen[None]):
    CSS_PATH = "sample.tcss"
    BINDINGS = [
        Binding("escape", "cancel_or_close", "Cancel / Back", tooltip="stop the sample being made, else close"),
        Binding("ctrl+g", "generate", "Generate", tooltip="generate with these settings (Enter in a field too)"),
        Binding("f2", "show_tab('output')", "Output", show=False),
        Binding("f3", "show_tab('history')", "History", show=False),
        Binding("f4", "show_tab('over-time')", "Over time", show=False),
    ]

    def __init__(self, run_dir: str | Path, data_dir: str = "") -> None:
        """`data_dir`: where a character vocabulary's meta.pkl is ("": where nanoGPT looks)."""
        super().__init__()
        self.run_dir = Path(run_dir)
        self.data_dir = data_dir
        self.sampler: ProtocolProcess | None = None
        self.generating = False
        self.sampler_ready = False   # its torch loaded, its model not yet: it answers a request at once
        self._input_error = False   # the status line says what is wrong in the settings or checkpoint
        self.history: list[Done] = []
        self.over_time: list[dict[str, Any]] = []
        self._samples_offset = 0
        self._ckpt_sig: tuple[tuple[str, int], ...] = ()
        self._ticks = 0
        self._request: dict[str, Any] = {}

    @classmethod
    def for_run(cls, run: RunController) -> SampleScreen:
        return cls(run.run_dir, run.config.data_dir)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(f"Sampling · {self.run_dir}", id="title")
        with Horizontal(id="ckpt-row", classes="row"):
            yield Label("checkpoint", classes="name")
            yield Select([], prompt="no checkpoint yet", id="ckpt", allow_blank=True, compact=True)
            yield Static("", id="ckpt-info")
        yield Static("", id="data-note")   # the run's data_dir is gone: what the sampler uses instead
        with Horizontal(id="prompt-row", classes="row"):
            yield Label("prompt", classes="name")
            yield Input(placeholder=r"text to continue (\n for a new line; empty: a new line or <|endoftext|>)",
                        id="prompt", compact=True)
            yield Button("Generate", id="generate", variant="primary", compact=True)   # beside what it acts on
        with Horizontal(id="settings", classes="row"):
            for name, (label, default) in SETTINGS.items():
                yield Label(label, classes="setting-name")
                yield Input(default, id=f"set-{name}", classes="setting", compact=True)
        yield Static("starting the sampler…", id="status")
        with TabbedContent(id="tabs", initial="output"):
            with TabPane("Output", id="output"):
                yield TextArea(read_only=True, soft_wrap=True, id="output-text")
            with TabPane("History", id="history"):
                with Horizontal():
                    yield OptionList(id="history-list")
                    yield TextArea(read_only=True, soft_wrap=True, id="history-text")
            with TabPane("Over time", id="over-time"):
                with Horizontal():
                    yield OptionList(id="over-time-list")
                    yield TextArea(read_only=True, soft_wrap=True, id="over-time-text")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_files()
        self.start_sampler()
        self.set_interval(TICK_S, self.tick)
        self.query_one("#prompt", Input).focus()

    def on_unmount(self) -> None:
        if self.sampler is not None:
            self.sampler.close_stdin()
            self.sampler.signal()
            self.sampler = None

    # ------------------------------------------------------------ the sampler process

    def start_sampler(self) -> None:
        self.sampler = ProtocolProcess(sampler_argv())
        self.sampler_ready = False
        self.set_status("sampler starting (loading torch)…")

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % FILES_EVERY == 0:
            self.refresh_files()
        sp = self.sampler
        if sp is None:
            return
        got = sp.drain()
        if got.events:
            self.take(got.events)
        if sp.finished_reading and not got.events:
            tail = (sp.stderr_tail(1) or [""])[-1]
            self.sampler = None
            self.generating = self.sampler_ready = False
            self.set_status(f"the sampler exited (code {sp.returncode}){': ' + tail if tail else ''}; "
                            f"Generate starts a new one", error=True)

    def take(self, events: list[dict[str, Any]]) -> None:
        out: list[str] = []
        for e in events:
            kind = e["type"]
            if kind == "token":
                if e.get("prompt"):
                    if e.get("sample", 0) > 0:
                        out.append("\n" + layout.SAMPLE_SEPARATOR + "\n")
                out.append(e["text"])
            elif kind == "sample_done":
                self.add_history(e)
                self.set_status(f"sample {e['sample'] + 1}/{self._request.get('num_samples', 1)}: "
                                f"{e['tokens']} tokens at {e['tokens_per_s']:.0f} tokens/s, first after "
                                f"{1000 * e['first_token_s']:.0f} ms" + (" (stopped)" if e.get("stopped") else ""))
            elif kind == "log" and e.get("ready"):
                self.sampler_ready = True
                if self._input_error:   # what the user must fix stays in view
                    shown = self.query_one("#status", Static).render()
                    self.set_status(f"{shown} · the sampler is ready", input_error=True)
                elif not self.generating:
                    self.set_status("ready: type a prompt; Enter (or ctrl+g) generates")
            elif kind == "log" and e.get("ckpt"):
                val = e.get("val_loss")
                note = self.query_one("#data-note", Static)
                note.update(e.get("tokenizer_note", ""))
                note.display = "tokenizer_note" in e
                info = f"iter {e.get('iter_num', e['iter'])}"
                info += f" · val loss {val:.4f}" if isinstance(val, (int, float)) else ""
                self.query_one("#ckpt-info", Static).update(
                    f"{info} · {e.get('params', 0) / 1e6:.2f}M params · {e.get('tokenizer', '?')} "
                    f"vocab {e.get('vocab_size', '?')} · block {e.get('block_size', '?')}"
                    + (f" · {e['device_reason']}" if isinstance(e.get("device_reason"), str) else ""))
            elif kind == "state":
                self.on_sampler_state(e)
            elif kind == "error":
                self.set_status(f"error: {e['message']}", error=True)
        if out:
            ta = self.query_one("#output-text", TextArea)
            ta.insert("".join(out), ta.document.end)
            ta.scroll_end(animate=False)

    def on_sampler_state(self, e: dict[str, Any]) -> None:
        state = e["state"]
        if state == "running":
            self.generating = True
            threads, device = e.get("threads", "?"), e.get("device", "cpu")
            where = (f"{threads} CPU thread(s)" + (" (the run is training)" if threads == 1 else "")
                     if device == "cpu" else str(device))
            self.set_status(f"generating from iter {e['iter']} on {where} · Esc stops")
            return
        self.generating = False
        if state == "stopped":
            self.set_status("stopped")
        elif state == "finished" and not self.query_one("#status", Static).has_class("error"):
            n = self._request.get("num_samples", 1)
            self.set_status(f"done: {n} sample(s)" + (f" · last {self._last_rate}" if self.history else ""))

    @property
    def _last_rate(self) -> str:
        d = self.history[-1]
        return f"{d.tokens} tokens at {d.tokens_per_s:.0f} tokens/s"

    def set_status(self, text: str, error: bool = False, input_error: bool = False) -> None:
        """`input_error`: the user's settings or checkpoint are wrong; the sampler's becoming ready
        (torch loads for seconds) does not write over it."""
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(error or input_error, "error")
        self._input_error = input_error

    # ------------------------------------------------------------ actions

    @on(Input.Submitted)
    @on(Button.Pressed, "#generate")
    def action_generate(self) -> None:
        if self.generating:
            self.set_status("already generating: Esc stops it first")
            return
        ckpt = self.query_one("#ckpt", Select).value
        if not isinstance(ckpt, str):
            if self._ckpt_sig:
                self.set_status("choose a checkpoint above first", input_error=True)
            elif not self.run_dir.is_dir():   # a log read (gpttui open LOG): nothing will ever be written beside it
                self.set_status(f"{self.run_dir.name} is a log, with no checkpoint beside it: sample the run's "
                                f"ckpt.pt with gpttui sample --out_dir=OUT_DIR", input_error=True)
            else:
                self.set_status(f"no checkpoint in {self.run_dir} yet: the run writes ckpt.pt at its first "
                                f"eval (every eval_interval iterations)", input_error=True)
            return
        try:
            values = parse_settings({n: self.query_one(f"#set-{n}", Input).value for n in SETTINGS})
        except ValueError as e:
            self.set_status(str(e), input_error=True)
            return
        prompt = self.query_one("#prompt", Input).value.replace("\\n", "\n")
        values.update(ckpt=ckpt, start=prompt, data_dir=self.data_dir)
        if self.sampler is None:
            self.start_sampler()
        assert self.sampler is not None
        if not self.sampler.send("sample", **values):
            self.set_status("the sampler is not running; try again", error=True)
            self.sampler = None
            return
        self._request = values
        self.generating = True
        self.query_one("#output-text", TextArea).clear()
        self.query_one("#tabs", TabbedContent).active = "output"
        self.set_status(f"sampling from {Path(ckpt).name}…")

    def action_cancel_or_close(self) -> None:
        if self.generating and self.sampler is not None:
            self.sampler.send("stop")
            self.set_status("stopping…")
        else:
            self.dismiss(None)

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    # ------------------------------------------------------------ history and samples over time

    def add_history(self, e: dict[str, Any]) -> None:
        top_k = e.get("top_k")
        settings = f"T{e.get('temperature')} k{top_k or '-'} p{e.get('top_p')} seed {e.get('seed')}"
        d = Done(time.time(), e.get("ckpt", ""), e["iter"], e.get("prompt", ""), e["text"], e["tokens"],
                 e.get("tokens_per_s", 0.0), settings, bool(e.get("stopped")))
        self.history.append(d)
        ol = self.query_one("#history-list", OptionList)
        ol.add_option(Option(d.label(len(self.history)), id=str(len(self.history) - 1)))
        ol.highlighted = len(self.history) - 1

    @on(OptionList.OptionHighlighted, "#history-list")
    def show_history(self, event: OptionList.OptionHighlighted) -> None:
        d = self.history[int(event.option.id or 0)]
        head = f"{Path(d.ckpt).name} · iter {d.iter} · {d.settings} · {d.tokens} tokens\n{layout.SAMPLE_SEPARATOR}\n"
        self.query_one("#history-text", TextArea).load_text(head + d.prompt + d.text)

    @on(OptionList.OptionHighlighted, "#over-time-list")
    def show_over_time(self, event: OptionList.OptionHighlighted) -> None:
        row = self.over_time[int(event.option.id or 0)]
        val = row.get("val_loss")
        head = (f"iter {row.get('iter')}" + (f" · val loss {val:.4f}" if isinstance(val, (int, float)) else "")
                + f" · {Path(str(row.get('ckpt', ''))).name}\n{layout.SAMPLE_SEPARATOR}\n")
        self.query_one("#over-time-text", TextArea).load_text(head + str(row.get("prompt", "")) + row["text"])

    def refresh_files(self) -> None:
        """Pick up new checkpoints and new lines of samples.jsonl (cheap: a glob and a stat)."""
        found = list_checkpoints(self.run_dir)
        sig = tuple((p.name, st.st_mtime_ns) for p, st in found)
        if sig != self._ckpt_sig:
            self._ckpt_sig = sig
            sel = self.query_one("#ckpt", Select)
            keep = sel.value
            options = [(f"{p.name}  ({time.strftime('%H:%M:%S', time.localtime(st.st_mtime))}, "
                        f"{st.st_size / 1e6:.1f} MB)", str(p)) for p, st in found]
            sel.set_options(options)
            # (the blank entry Select lists first reads as the prompt: once there are checkpoints,
            # "no checkpoint yet" above them would be a choice that is not true)
            sel.prompt = "choose a checkpoint" if options else "no checkpoint yet"
            values = [v for _, v in options]
            if keep in values:
                sel.value = keep
            elif values:
                sel.value = values[0]
        before = self._samples_offset
        rows, self._samples_offset = read_samples_jsonl(self.run_dir / layout.SAMPLES, self._samples_offset)
        ol = self.query_one("#over-time-list", OptionList)
        if self._samples_offset < before:  # the file was replaced: start the list again
            self.over_time.clear()
            ol.clear_options()
        if rows:
            for row in rows:
                self.over_time.append(row)
                val = row.get("val_loss")
                first = (str(row.get("prompt", "")) + row["text"]).strip().splitlines()
                ol.add_option(Option(
                    f"iter {row.get('iter', '?'):>7} · "
                    + (f"val {val:.3f}" if isinstance(val, (int, float)) else "val  -   ")
                    + f" · {(first[0] if first else '')[:60]}", id=str(len(self.over_time) - 1)))
            ol.highlighted = len(self.over_time) - 1
