"""The Textual app, and `EngineRun`: the controller of a run it trains in an engine process.

The app is the same for every use; what it shows and what its keys do come from its
controller (`Controller` below). `GpttuiApp(plan)` trains: `EngineRun` starts, resumes or
attaches to the engine. `gpttui open` gives it viewer.ReadOnlyRuns, which only reads runs.
Screens read the controller through screens/controller.py's `RunController` and post its intent
messages; the app hands those to the controller and posts `RunUpdated` to the screens on a
timer. Neither side calls into the other's internals.

EngineRun's flow: the first frame shows at once; a thread reads RUN_DIR/metrics.jsonl (if any)
into a `LiveRun`; data is prepared if the plan asks for it; then the engine starts (or resumes,
or is attached to). A 4 Hz timer drains what the engine wrote (read off the UI thread by
gpttui.ipc) and the screens redraw what changed at their own frame rates; nothing is drawn per event.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Protocol

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from gpttui.analysis.config_edit import ApplyAction
from gpttui.analysis.live import LiveRun
from gpttui.fs.lock import FileLock
from gpttui.ipc.client import NotRunning, SocketClient
from gpttui.ipc.peer import Peer
from gpttui.ipc.process import EngineClient
from gpttui.run import config as C
from gpttui.run import directory, engine_state, layout
from gpttui.run.metrics import EventReader
from gpttui.screens.confirm import Choice, ConfirmScreen
from gpttui.screens.controller import (
    ApplyConfig,
    DisplayFailed,
    Intent,
    LiveRunReads,
    LogLines,
    OpenRun,
    QuitApp,
    ResumeRun,
    RunController,
    RunUpdated,
    SendCommand,
    StopRun,
)
from gpttui.screens.dashboard import BINDING_IDS, DashboardScreen
from gpttui.screens.failure import Failure, FailureChoice, FailureScreen, exit_text
from gpttui.screens.keymap import load_keymap
from gpttui.screens.prepare_data import PrepareScreen
from gpttui.widgets import loss_chart
from gpttui.widgets.system import THIS_MACHINE, Machine

TICK_S = 0.25


@dataclass
class DataToPrepare:
    """train.bin is missing: prepare it from `source` (None: ask the user for a path)."""

    data_dir: Path
    source: Path | None = None
    tokenizer: str = "gpt2"


@dataclass
class LaunchPlan:
    run_dir: Path
    loaded: C.LoadedConfig
    engine_args: list[str] = field(default_factory=list)  # --key=value for the first engine start
    start: bool = True                  # start (or resume) the engine once the history is read
    prepare: DataToPrepare | None = None
    note: str = ""                      # shown in the header, e.g. "demo"
    new_run: bool = False               # config.toml to be written (again) under the lock the engine takes over
    force: bool = False                 # the new run replaces one (launch --force said what)
    attach: bool = False                # its engine is already running: connect to it
    warnings: list[str] = field(default_factory=list)   # the new run's config warnings, said once it is up


class Controller(RunController, Protocol):
    """What the app drives: the run the screens read, its first screen, its start, its timer and
    the screens' intents (a controller ignores those it has no use for)."""

    tick_s: float

    def first_screen(self) -> Screen[Any]: ...

    def start(self, app: App[Any]) -> None:
        """The app is up: read what is there, start what the controller runs."""
        ...

    def tick(self) -> bool:
        """Take what arrived since the last tick; True: the screens redraw at once."""
        ...

    def handle(self, intent: Intent) -> None: ...

    def shutdown(self) -> None:
        """The app is closing, however it ends."""
        ...


class GpttuiApp(App[int]):
    TITLE = "gpttui"
    CSS_PATH = "app.tcss"   # app-wide; each screen brings its own, scoped to it
    BINDINGS = [Binding("ctrl+c", "ctrl_c", "Quit", show=False, priority=True)]

    def __init__(self, run: LaunchPlan | Controller, machine: Machine = THIS_MACHINE) -> None:
        """A LaunchPlan trains that run (EngineRun); a controller brings its own runs (the viewer's).
        `machine`: the clock and system figures the dashboard shows (widgets/system.py)."""
        super().__init__()
        self.machine = machine
        self.controller: Controller = EngineRun(run) if isinstance(run, LaunchPlan) else run
        self.ui_errors: list[str] = []  # exceptions the timer and the screens caught (tests assert none)
        self._bindings_key: tuple[bool, bool, str, bool] | None = None
        self._clash_said = False
        # Textual reads a screen's CSS_PATH when it pushes the screen, never for the default one:
        # the app reads the first screen's (a screen pushed over a default one instead would be
        # repainted whole each time the default one under it is)
        self._first_screen = self.controller.first_screen()
        self.css_path = [*self.css_path, *self._first_screen.css_path]

    def get_default_screen(self) -> Screen[Any]:
        return self._first_screen

    def on_mount(self) -> None:
        self._load_keymap()
        loss_chart.preload()
        self.controller.start(self)
        self.set_interval(self.controller.tick_s, self._tick)

    def _load_keymap(self) -> None:
        """The user's keymap.toml rebinds bindings by id; what can't be used is one warning."""
        keymap = load_keymap(known_ids=BINDING_IDS)
        for warning in keymap.warnings:
            self.notify(warning, severity="warning", timeout=10)
        if keymap.keys:
            self.set_keymap(keymap.keys)

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: DOMNode) -> None:
        """A keymap that gives one key to two bindings: the keymap's wins; said once."""
        if not self._clash_said:
            self._clash_said = True
            taken = ", ".join(sorted(f"{b.key} ({b.description or b.action})" for b in clashed_bindings))
            self.notify(f"keymap.toml: keys already in use, now the keymap's: {taken}", severity="warning",
                        timeout=10)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette (ctrl+p): every key the screen offers now, with its key, then Textual's."""
        seen: set[tuple[str, str]] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if not b.description or not active.enabled or (b.action, b.description) in seen \
                    or b.action.startswith("app.") or b.action == "command_palette":
                continue
            seen.add((b.action, b.description))
            shown = self.get_key_display(b)
            yield SystemCommand(f"{b.description} ({shown})", f"key {shown}: {b.tooltip or b.description}",
                                partial(self.run_action, b.action, active.node))
        yield from super().get_system_commands(screen)

    def _tick(self) -> None:
        try:
            force = self.controller.tick()
        except Exception as e:  # a display bug must not take the run down with the UI
            self._record_error(repr(e), traceback.format_exc().splitlines())
            force = False
        self._sync_bindings()
        self.update_screens(force)

    def update_screens(self, force: bool = False) -> None:
        """Tell every screen in the stack that the run moved on (those showing it redraw)."""
        for screen in self.screen_stack:
            screen.post_message(RunUpdated(force))

    def _sync_bindings(self) -> None:
        """Re-check which keys apply (the footer recomposes, so only when that changes)."""
        ctl = self.controller
        # Pause <-> Resume, Resume after a failure, Undo while the engine offers one
        key = (ctl.engine_alive, ctl.can_resume, ctl.display_state, ctl.live.undo is not None)
        if key != self._bindings_key and self.screen_stack:   # (no screen left while the app closes)
            self._bindings_key = key
            self.refresh_bindings()

    @on(DisplayFailed)
    def _display_failed(self, message: DisplayFailed) -> None:
        self._record_error(message.error, message.traceback)

    def _record_error(self, error: str, lines: list[str]) -> None:
        self.ui_errors.append(error)
        if len(self.ui_errors) == 1:
            self.controller.log.write(lines)
            self.notify(f"display error (see the log pane): {error}", severity="error")

    @on(SendCommand)
    @on(StopRun)
    @on(ResumeRun)
    @on(ApplyConfig)
    @on(QuitApp)
    @on(OpenRun)
    def _intent(self, intent: Intent) -> None:
        self.controller.handle(intent)
        self.update_screens(force=True)   # what it changed (a pending command) shows at once

    def action_ctrl_c(self) -> None:
        self.controller.handle(QuitApp())

    def on_unmount(self) -> None:
        self.controller.shutdown()


class QuitChoice(Enum):
    STOP = "stop"       # stop and save, then quit
    DETACH = "detach"   # quit; the engine trains on and `gpttui attach` reconnects
    CANCEL = "cancel"


class EngineRun(LiveRunReads):
    """The controller of a run this app trains: its engine process (started, resumed, restarted
    or attached to), the LiveRun its events build, and what the status line says about them."""

    tick_s = TICK_S
    read_only = False
    app: App[Any]   # set by start()

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.run_dir = plan.run_dir
        self.loaded = plan.loaded
        self.header_note = plan.note
        self.live = LiveRun()
        self.log = LogLines()
        self.engine: Peer | None = None
        self.pending = ""              # a command sent, its effect not yet seen
        self.stopping = False          # stop sent; waiting for the checkpoint and the exit
        self.quit_when_stopped = False
        self.failure: Failure | None = None
        self.loading = True
        self._seen_state: str | None = None
        self._history_end = 0  # byte offset of metrics.jsonl the history was read up to
        self._error_shown_at = 0.0
        self._save_asked = False
        self._after_stop: list[str] = []  # engine args for a restart once the running one stopped
        self._ui_lock: FileLock | None = None  # held while this dashboard is connected to an engine
        self.farewell = ""                     # what the shell shows after the app (a detach's how-to-return)

    # ------------------------------------------------------------ what screens read

    @property
    def engine_alive(self) -> bool:
        return self.engine is not None and self.engine.alive

    @property
    def display_state(self) -> str:
        if self.loading:
            return "loading"
        state = self.live.state
        if self.engine_alive:
            return state or "starting"
        if self.engine is not None and state in layout.ACTIVE_STATES:
            return "failed"  # it exited without saying it had finished
        return state or "not started"

    @property
    def can_resume(self) -> bool:
        """r: a stopped or failed run goes on from its checkpoint; one that finished at its max_iters
        has nothing left to run (it would train its last stretch again): e trains it longer."""
        if self.engine_alive or self.loading or not (self.run_dir / layout.CONFIG).exists():
            return False
        return not (self.live.state == "finished" and self.live.iter >= self.config.max_iters)

    @property
    def can_detach(self) -> bool:
        """Whether the engine handle can let the engine train on without this UI."""
        return isinstance(self.engine, EngineClient | SocketClient)

    # ------------------------------------------------------------ start-up

    def first_screen(self) -> DashboardScreen:
        return DashboardScreen(self)

    def start(self, app: App[Any]) -> None:
        self.app = app
        for warning in self.plan.warnings:
            app.notify(warning, severity="warning", timeout=15)
        app.run_worker(self._load_history, thread=True, name="load-history")

    def _load_history(self) -> None:
        """Off the UI thread: rebuild the panels' state from metrics.jsonl."""
        live = LiveRun()
        metrics = self.run_dir / layout.METRICS
        if metrics.exists():
            reader = EventReader(metrics)
            for n, e in enumerate(reader, 1):
                live.add(e)
                if n % 50_000 == 0:  # a long run's history takes seconds: say how far it got
                    self.pending = f"reading {layout.METRICS}: {n:,} events"
            self.pending = ""
            self._history_end = reader.end  # attaching picks up here: no gap, no duplicate
            live.history.count_lines(reader)  # the doctor panel says what was skipped
        if live.state in layout.ACTIVE_STATES and not self.plan.attach:
            live.history.state = "stopped"  # the engine that wrote this is gone
        self.app.call_from_thread(self._history_loaded, live)

    def _history_loaded(self, live: LiveRun) -> None:
        self.live = live
        self.loading = False
        if self.plan.attach:
            self._attach_engine()
        elif self.plan.prepare is not None:
            self._prepare_data(self.plan.prepare)
        elif self.plan.start:
            self._start_planned()

    def _prepare_data(self, need: DataToPrepare) -> None:
        self.pending = "preparing the data…"

        def done(ok: bool | None) -> None:
            self.pending = ""
            if ok and self.plan.start:
                self._start_planned()
            elif not ok:
                self.app.notify("No data: the run can't start. Quit with q.", severity="warning")
        self.app.push_screen(PrepareScreen(need.data_dir, need.source, need.tokenizer), done)

    def _start_planned(self) -> None:
        if not self.plan.new_run:
            self._spawn(self.plan.engine_args)
            return
        try:  # the engine takes the run's lock over from `preparing`: no other start slips in between
            with directory.preparing(self.loaded.config, self.run_dir, self.plan.force) as (cfg, _, lock):
                self.loaded = C.LoadedConfig(cfg, self.loaded.source, self.loaded.source_text,
                                             self.loaded.overrides)
                self.plan.new_run = False  # (a resume's changes: the engine writes them once it accepts them)
                self._spawn([*directory.engine_overrides(cfg, self.run_dir), *self.plan.engine_args], lock)
        except (directory.RunDirError, C.ConfigError) as e:
            self._show_failure(Failure(str(e)))

    def _spawn(self, args: list[str], lock: FileLock | None = None) -> None:
        self.failure = None
        self.stopping = False
        self.pending = "starting the engine…"
        self._seen_state = None
        self.live.history.state = "starting"  # until the new engine says otherwise
        self.engine = engine = EngineClient(self.run_dir, args, lock=lock)
        self._hold_ui_lock()
        self.log.write([f"── engine started (pid {engine.pid}): "
                        f"python -m gpttui.engine {self.run_dir} {' '.join(args)}".rstrip()])

    def _attach_engine(self) -> None:
        """Watch and drive an engine that is already running (through its control socket)."""
        try:
            self.engine = engine = SocketClient(self.run_dir, history_from=self._history_end)
        except (NotRunning, OSError) as e:
            self.app.notify(f"Could not attach: {e}", severity="error")
            return
        self._hold_ui_lock()
        self.log.write([f"── attached to the engine (pid {engine.pid})"])

    def _hold_ui_lock(self) -> None:
        """Say that a dashboard is connected (`gpttui attach --status` reads it)."""
        if self._ui_lock is None:
            lock = FileLock(self.run_dir / engine_state.UI_LOCK)
            try:
                if lock.acquire():
                    self._ui_lock = lock
            except OSError:
                pass   # advisory only (a read-only directory, another dashboard holding it)

    def _release_ui_lock(self) -> None:
        if self._ui_lock is not None:
            self._ui_lock.release()
            self._ui_lock = None

    # ------------------------------------------------------------ the timer

    def tick(self) -> bool:
        eng = self.engine
        if eng is None:
            return False
        d = eng.drain()
        if d.events:
            for e in d.events:
                self.live.add(e)
                self._on_event(e)
            self._notify_errors(d.events)
        if d.stderr:
            self.log.write(d.stderr)
        if d.dropped:
            self.live.dropped += d.dropped
        if eng.finished_reading:
            self._engine_exited(eng)
        return False

    def _on_event(self, e: dict[str, Any]) -> None:
        kind = e.get("type")
        if kind == "state":
            state = e.get("state")
            if state != self._seen_state:
                self._seen_state = state
                if not (self.stopping and state in ("saving", "running")):
                    self.pending = ""
        elif kind == "hello":
            self.pending = ""
        elif kind == "checkpoint":
            if self._save_asked:  # the user asked; automatic ones show in the eval table
                self._save_asked = False
                self.app.notify(f"checkpoint saved at iteration {e.get('iter', 0):,}", timeout=3)
        elif kind == "undo" and e.get("message"):
            self.pending = "" if self.pending.startswith("undoing") else self.pending
            offer = " (u undoes it)" if e.get("available") else ""
            self.app.notify(f"{e['message']}{offer}", timeout=6)
        elif kind == "config":
            changes = e.get("changes") or {}
            self.pending = ""
            if changes:
                self.app.notify("applied: " + ", ".join(f"{k}={v}" for k, v in changes.items()), timeout=4)

    def _notify_errors(self, events: list[dict[str, Any]]) -> None:
        """Errors the engine survives (a refused `set`, a bad command) as a notification; a fatal
        one (the batch ends in state failed) is left to the failure screen."""
        if self.live.state in layout.FINAL_STATES:
            return
        errors = [e for e in events if e.get("type") == "error" and e.get("message")]
        now = time.monotonic()
        if errors and now - self._error_shown_at > 2:  # a flood of errors must not flood the screen
            self._error_shown_at = now
            self.app.notify(str(errors[-1]["message"]), severity="error", timeout=6)

    def _engine_exited(self, eng: Peer) -> None:
        code = eng.returncode
        self.engine = None
        self._release_ui_lock()
        self.pending = ""
        self.stopping = False
        state = self.live.state
        self.log.write([f"── engine exited with code {code}"])
        if self.quit_when_stopped:
            if code:   # the stop failed (its checkpoint not written): the shell is told why
                err = (self.live.last_error or {}).get("message") or f"the engine ended ({exit_text(code)})"
                self.farewell = f"error: {err}"
            self.app.exit(code)
            return
        if code == 0 and state in ("finished", "stopped"):
            self.app.notify(f"run {state} at iteration {self.live.iter:,}", timeout=5)
            return
        err = self.live.last_error or {}
        message = (err.get("message") or getattr(eng, "exit_description", "")  # an attached engine's end
                   or f"the engine ended ({exit_text(code)}) while {state or 'starting'}")
        self.live.history.state = "failed"
        self._show_failure(Failure(message, code, err.get("traceback") or "", eng.stderr_tail(30),
                                   self._checkpoint_iter()))

    def _checkpoint_iter(self) -> int | None:
        """The iteration a resume would start from: the file on disk is the truth (an engine
        killed between writing ckpt.pt and reporting it leaves the history one behind)."""
        path = self.run_dir / layout.CKPT
        if not path.exists():
            return None
        peek = directory.peek_checkpoint(path) or {}
        it = peek.get("iter_num")
        if isinstance(it, int):
            return it
        return self.live.last_checkpoint_iter if self.live.last_checkpoint_iter is not None else 0

    def _show_failure(self, failure: Failure) -> None:
        self.failure = failure
        self.live.history.state = "failed"

        def done(choice: FailureChoice | None) -> None:
            if choice is FailureChoice.RESUME:
                self.resume_run()
            elif choice is FailureChoice.QUIT:
                self.app.exit(1)
        self.app.push_screen(FailureScreen(failure), done)

    # ------------------------------------------------------------ intents

    def handle(self, intent: Intent) -> None:
        match intent:
            case SendCommand(command=command, pending=pending):
                self.command(command, pending)
            case StopRun():
                self.stop_engine()
            case ResumeRun():
                self.resume_run()
            case ApplyConfig(changes=changes, action=action):
                self.apply_changes(changes, action)
            case QuitApp():
                self.request_quit()

    def send(self, cmd: str, **values: Any) -> bool:
        """Send a protocol command to the engine; False (and a notification) if none runs."""
        if self.engine is None or not self.engine.alive or not self.engine.send(cmd, **values):
            self.app.notify("No engine is running: press r to resume the run first.", severity="warning")
            return False
        return True

    def command(self, cmd: str, pending: str = "") -> None:
        if self.send(cmd):
            self.pending = pending
            self._save_asked = self._save_asked or cmd == "save"

    def stop_engine(self) -> None:
        if self.send("stop"):
            self.stopping = True
            self.pending = "stopping: saving a checkpoint…"

    def apply_changes(self, changes: dict[str, Any], action: ApplyAction) -> None:
        """LIVE sends a `set` (or resumes a stopped run with the changes), RESTART restarts the
        engine from its checkpoint with them, NEW_RUN starts over from the changed config."""
        if not changes and action is not ApplyAction.NEW_RUN:
            return
        if action is ApplyAction.LIVE and self.engine_alive:
            self.send("set", **changes)
            self.pending = "applying " + ", ".join(f"{k}={v}" for k, v in changes.items())
        elif action in (ApplyAction.LIVE, ApplyAction.RESTART):
            self.restart_engine(changes)
        else:
            self.start_new_run(C.replace(self.config, **changes))

    def resume_run(self) -> None:
        """Start the engine again: from ckpt.pt if there is one, else as the run first started."""
        if self.engine_alive:
            self.app.notify("The engine is already running.")
            return
        if not (self.run_dir / layout.CONFIG).exists():
            self.app.notify("This run has no config.toml yet: nothing to resume.", severity="warning")
            return
        self._spawn([f"--init_from={directory.start_from(self.run_dir, self.config)}"])

    def restart_engine(self, changes: dict[str, Any]) -> None:
        """Resume from the checkpoint with `changes` (stopping the running engine first)."""
        args = [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in changes.items()]
        args.append(f"--init_from={directory.start_from(self.run_dir, self.config)}")
        if self.engine_alive:
            self.stop_engine()
            self._after_stop = args
            self.app.set_timer(0.2, self._restart_when_stopped)
        else:
            self._spawn(args)

    def _restart_when_stopped(self) -> None:
        if self.engine is not None:
            self.app.set_timer(0.2, self._restart_when_stopped)
        elif self.failure is None:  # (a failed stop shows its failure screen instead)
            self._spawn(self._after_stop)

    def start_new_run(self, cfg: C.TrainConfig) -> None:
        """Switch to a new run directory (cfg.out_dir) with this config."""
        if self.engine_alive:
            self.app.notify("Stop the current run first (x), then start the new one.", severity="warning")
            return
        self.run_dir = Path(cfg.out_dir)
        self.loaded = C.LoadedConfig(cfg)
        self.plan = LaunchPlan(self.run_dir, self.loaded, new_run=True)
        self.live = LiveRun()
        self.loading = True
        self.app.run_worker(self._load_history, thread=True, name="load-history")

    def request_quit(self) -> None:
        """q: quit; a live engine is asked about first (stop and save, detach, or cancel)."""
        if isinstance(self.app.screen, ConfirmScreen):
            return  # already asking (a second Ctrl+C)
        if not self.engine_alive:
            self.app.exit(0)
            return
        if self.stopping:
            self.app.push_screen(ConfirmScreen(
                "Still saving…", "The engine is writing its checkpoint. Kill it now? "
                "(the last complete checkpoint stays)",
                [Choice(False, "Wait", "n", "primary"), Choice(True, "Kill it and quit", "y", "error")]),
                self._kill_answer)
            return
        choices = [Choice(QuitChoice.STOP, "Stop and save", "y", "primary")]
        if self.can_detach:
            choices.append(Choice(QuitChoice.DETACH, "Detach: leave it training", "d"))
        choices.append(Choice(QuitChoice.CANCEL, "Cancel", "n"))
        self.app.push_screen(ConfirmScreen(
            "Quit gpttui?", f"The run is at iteration {self.live.iter:,}. Stop it and save a checkpoint first?",
            choices), self._quit_answer)

    def _quit_answer(self, answer: QuitChoice | None) -> None:
        if answer is QuitChoice.STOP:
            self.quit_when_stopped = True
            self.stop_engine()
            if not self.engine_alive:
                self.app.exit(0)
        elif answer is QuitChoice.DETACH and isinstance(self.engine, EngineClient | SocketClient):
            pid = self.engine.pid
            self.engine.detach()
            self.engine = None
            self._release_ui_lock()
            self.farewell = detach_message(pid, self.run_dir, self.live.iter)
            self.app.exit(0, message=self.farewell)   # printed in the shell once the screen is gone

    def _kill_answer(self, kill: bool | None) -> None:
        if kill and self.engine is not None:
            self.engine.terminate(grace=3.0)
            self.app.exit(1)

    # ------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """Whatever ends the app, an engine it owns is not left orphaned without a checkpoint. The
        dashboard failing (an exception: exit code 1) is a UI lost, not a stop the user asked for:
        the engine checkpoints and follows its on_ui_lost, as when the terminal closes."""
        self._release_ui_lock()
        eng = self.engine
        if eng is not None and eng.alive and self.app.return_code == 1 and isinstance(eng, EngineClient | SocketClient):
            cfg = self.live.train_config()
            stays = cfg is None or cfg.on_ui_lost == "detach"
            self.farewell = ui_failed_message(eng.pid, self.run_dir, self.live.iter, stays)
            eng.detach()
            self.engine = None
            return
        if eng is not None and eng.alive:
            eng.send("stop")
            deadline = time.monotonic() + 30
            while eng.alive and time.monotonic() < deadline:
                time.sleep(0.05)
            if eng.alive:
                eng.terminate(grace=5.0)


def ui_failed_message(pid: int | None, run_dir: Path, at_iter: int, stays: bool) -> str:
    """What the shell shows under the traceback of a dashboard that failed while its engine trained."""
    if not stays:
        return (f"gpttui: the dashboard failed (above); the engine (pid {pid}) saves a checkpoint and stops "
                f"(on_ui_lost = 'stop'), from iteration {at_iter:,} in {run_dir}\n"
                f"  resume it:  gpttui launch {run_dir}")
    return (f"gpttui: the dashboard failed (above); the engine (pid {pid}) saves a checkpoint and trains on "
            f"from iteration {at_iter:,} in {run_dir}\n"
            f"  back to it:  gpttui attach {run_dir}\n"
            f"  is it alive: gpttui attach {run_dir} --status")


def detach_message(pid: int | None, run_dir: Path, at_iter: int) -> str:
    """What the shell shows once the dashboard has detached: the engine is still there, and how
    to get back to it."""
    return (f"gpttui: detached; the engine (pid {pid}) trains on from iteration {at_iter:,} in {run_dir}\n"
            f"  back to it:  gpttui attach {run_dir}\n"
            f"  is it alive: gpttui attach {run_dir} --status")
