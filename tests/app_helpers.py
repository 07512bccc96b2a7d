"""Helpers of the UI tests: a tiny run's config, an app that hosts one screen, pilot waits, and
what the terminal shows, read through Textual's public API only."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from engine_kit import make_char_data
from textual.app import App
from textual.css.query import NoMatches
from textual.errors import NoWidget
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget

from gpttui.commands.launch import make_plan
from gpttui.ipc.peer import Peer
from gpttui.run import config as C
from gpttui.run import protocol
from gpttui.run.metrics import MetricsWriter
from gpttui.screens.confirm import ConfirmScreen
from gpttui.screens.dashboard import DashboardScreen

TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4,
            gradient_accumulation_steps=1, dropout=0.0, device="cpu", dtype="float32",
            compile=False, threads=1, eval_interval=10, eval_iters=2, log_interval=1,
            learning_rate=1e-3, min_lr=1e-4, warmup_iters=2, max_iters=100000,
            lr_decay_iters=100000, always_save_checkpoint=True, sample_on_checkpoint=False)


def tiny_config(root: Path, data_dir: Path | None = None, **changes: Any) -> Path:
    """A TOML config for a tiny model on `data_dir` (the char_data fixture; None: character data
    made in root/data), its run dir at root/run."""
    data_dir = data_dir or make_char_data(root / "data")
    cfg = C.replace(C.DEFAULTS, **{**TINY, "out_dir": str(root / "run"), "data_dir": str(data_dir), **changes})
    path = root / "tiny.toml"
    C.save(cfg, path)
    return path


def written_run(tmp_path: Path, char_data: Path) -> Path:
    """A finished run directory as the engine leaves it, written directly (no engine)."""
    plan = make_plan(str(tiny_config(tmp_path, char_data, max_iters=20, lr_decay_iters=20)), [])
    writer = MetricsWriter(plan.run_dir / "metrics.jsonl")
    writer.write(protocol.event("hello", 0, version=1, config={"max_iters": 20, "eval_interval": 10},
                                params={"nanogpt": 14_000}, device="cpu", dtype="float32", peak_flops=1e11,
                                tokens_per_iter=64, start_iter=0, max_iters=20))
    writer.write(protocol.event("state", 0, state="running"))
    for i in range(20):
        writer.write(protocol.event("step", i, loss=4.2 - i / 10, lr=1e-3, dt_ms=5.0, tokens_per_s=12_800.0,
                                    mfu=0.01, grad_norm=1.0, tokens=64 * (i + 1)))
        if i % 10 == 0:
            writer.write(protocol.event("eval", i, train_loss=4.2 - i / 10, val_loss=4.3 - i / 10))
    writer.write(protocol.event("state", 20, state="finished"))
    writer.close()
    return plan.run_dir


class ScriptedEngine(Peer):
    """An engine process as the dashboard sees it through its channel, with no process: the
    events and log lines it sent wait in its inbox, each event read back from its line as a
    real one's reader thread reads it, for the app's next drain. With `exit_code` it has already
    exited with that code; else it trains on until a stop, which it answers with state stopped
    and exit code 0."""

    pid = 4242

    def __init__(self, events: Sequence[dict[str, Any]], log: Sequence[str] = (), exit_code: int | None = None) -> None:
        super().__init__()
        for e in events:
            self.inbox.put_event(protocol.decode_event(protocol.encode(e)))
        self.inbox.put_lines(log)
        self.sent: list[dict[str, Any]] = []   # the commands the app sent, in order
        self._code = exit_code
        self._iter = max((e["iter"] for e in events), default=0)

    def send(self, cmd: str, **values: Any) -> bool:
        if self._code is not None:
            return False
        self.sent.append({"cmd": cmd, **values})
        if cmd == "stop":
            self.inbox.put_event(protocol.event("state", self._iter, state="stopped"))
            self._code = 0
        return True

    @property
    def returncode(self) -> int | None:
        return self._code

    @property
    def alive(self) -> bool:
        return self._code is None

    @property
    def finished_reading(self) -> bool:
        return self._code is not None

    def wait(self, timeout: float | None = None) -> int | None:
        return self._code

    def signal(self, sig: int = 15) -> None:
        if self._code is None:
            self._code = -sig

    def close_stdin(self) -> None:
        pass


# ---------------------------------------------------------------- driving the app

UNSET = object()


class ScreenHost(App[None]):
    """Pushes one screen and keeps what it was dismissed with (`result`, UNSET until then)."""

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.pushed = screen
        self.result: Any = UNSET

    def on_mount(self) -> None:
        self.push_screen(self.pushed, self._done)

    def _done(self, result: Any) -> None:
        self.result = result


def pilot_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async pilot test with asyncio (no pytest plugin needed)."""
    @functools.wraps(fn)
    def run_it(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run_it


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)


async def wait_for(pilot, pred: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until pred() holds (checked every 50 ms). A query that finds no widget
    yet is not holding: a screen is pushed at once and composed after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except NoMatches:
            pass
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")


async def quit_and_stop(pilot, app: App[Any], answer: str = "y") -> None:
    """q, then `answer` to the quit question (y, or enter for its default: stop and save), then
    wait for the app to exit."""
    await pilot.press("q")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
    await pilot.press(answer)
    await wait_for(pilot, lambda: not app.is_running, 60, "the app to exit")


def record_notifications(app: App[Any]) -> list[str]:
    """The messages of every notification the app shows from now on."""
    shown: list[str] = []
    notify = app.notify

    def recording(message: str, *args: Any, **kwargs: Any) -> None:
        shown.append(message)
        notify(message, *args, **kwargs)
    app.notify = recording  # type: ignore[method-assign]
    return shown


def pid_alive(pid: int) -> bool:
    """Whether a process runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"   # (the state follows the command's name)
    except OSError:
        return False


def dashboard(app: App[Any]) -> DashboardScreen:
    """The dashboard, on top or under other screens."""
    return next(s for s in reversed(app.screen_stack) if isinstance(s, DashboardScreen))


# ---------------------------------------------------------------- what is shown

def text_of(widget: Widget) -> str:
    """What a Static-like widget holds, as plain text (shown or not)."""
    r = widget.render()
    return getattr(r, "plain", str(r))


def screen_text(app: App[Any], selector: str | None = None) -> str:
    """What the terminal shows of the top screen (in the content region of `selector`, if given),
    one line per row: every widget drawn into its place on screen, clipped as the screen clips
    it, in the screen's drawing order."""
    screen = app.screen
    width, height = app.size
    whole = Region(0, 0, width, height)
    rows = [[" "] * width for _ in range(height)]
    placed = []
    for widget in screen.walk_children(Widget):
        if not (widget.display and widget.visible):
            continue
        try:
            geometry = screen.find_widget(widget)
        except NoWidget:   # inside a container that is not displayed
            continue
        placed.append((geometry.order, widget, geometry.region, geometry.region.intersection(geometry.clip).intersection(whole)))
    for _, widget, region, visible in sorted(placed, key=lambda p: p[0]):
        if not visible.area:
            continue
        strips = widget.render_lines(visible.translate((-region.x, -region.y)))
        for dy, strip in enumerate(strips):
            text = strip.text
            y = visible.y + dy
            for dx, char in enumerate(text[:visible.width]):
                rows[y][visible.x + dx] = char
    if selector is not None:
        r = screen.query_one(selector).content_region
        rows = [row[r.x:r.right] for row in rows[r.y:r.bottom]]
    return "\n".join("".join(row).rstrip() for row in rows)


def flat(app: App[Any], selector: str | None = None) -> str:
    """The shown text with line breaks and runs of spaces as one space (undoes wrapping)."""
    return " ".join(screen_text(app, selector).split())


def footer_text(app: App[Any]) -> str:
    """What the top screen's footer shows (its keys and their names)."""
    return " ".join(screen_text(app, "Footer").split())


async def palette_search(pilot, query: str, expect: str) -> str:
    """Open the command palette (ctrl+p), type `query`, wait until it offers `expect` and return
    what it shows; Esc closes it again."""
    from textual.command import CommandPalette
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), 5, "the command palette")
    await pilot.press(*query)
    await wait_for(pilot, lambda: expect in screen_text(app), 5, f"{expect!r} in the palette for {query!r}")
    shown = screen_text(app)
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), 5, "the palette closed")
    return shown
