"""The Textual app: owns the engine process and the run's live state; the dashboard shows it.

Flow: the first frame shows at once; a thread reads RUN_DIR/metrics.jsonl (if any) into a
`LiveRun`; data is prepared if the plan asks for it; then the engine starts (or resumes).
A ~10 Hz timer drains what the engine wrote (read off the UI thread by `client`) and
refreshes the panels; nothing is drawn per event.

Public API for screens (config, extend, sample, doctor): `run_dir`, `loaded`, `config`,
`history`, `live`, `ms_per_iter`, `engine_alive`, `send(cmd, **values)`, `apply_changes()`.
No torch here, ever (tests/test_no_torch.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from gpttui.analysis.live import LiveRun
from gpttui.ipc.process import EngineClient, ProtocolProcess
from gpttui.run import config as C
from gpttui.run import directory, layout
from gpttui.run.history import EventReader, RunHistory
from gpttui.screens.confirm import Choice, ConfirmScreen
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.failure import Failure, FailureScreen
from gpttui.widgets import loss_chart

TICK_S = 0.1


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
    new_run: bool = False               # config.toml still to be written (after data is ready)
    attach: bool = False                # its engine is already running: connect to it


class GpttuiApp(App):
    TITLE = "gpttui"
    # Every screen's styles, loaded once here (their rules are scoped by screen class).
    CSS_PATH = ["app.tcss", "screens/dashboard.tcss", "screens/confirm.tcss", "screens/help.tcss",
                "screens/failure.tcss", "screens/prepare_data.tcss"]
    BINDINGS = [Binding("ctrl+c", "ctrl_c", "Quit", show=False, priority=True)]

    def __init__(self, plan: LaunchPlan) -> None:
        super().__init__()
        self.plan = plan
        self.run_dir = plan.run_dir
        self.loaded = plan.loaded
        self.header_note = plan.note
        self.live = LiveRun()
        self.engine: ProtocolProcess | None = None
        self.pending = ""              # a command sent, its effect not yet seen
        self.stopping = False          # stop sent; waiting for the checkpoint and the exit
        self.quit_when_stopped = False
        self.failure: Failure | None = None
        self.loading = True
        self._seen_state: str | None = None
        self._history_end = 0  # byte offset of metrics.jsonl the history was read up to
        self._error_shown_at = 0.0
        self._save_asked = False
        self._bindings_key: tuple[bool, bool] | None = None
        self._after_stop: list[str] = []  # engine args for a restart once the running one stopped
        self.ui_errors: list[str] = []  # exceptions the timer caught (tests assert there are none)

    # ------------------------------------------------------------ public API for screens

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

    @property
    def engine_alive(self) -> bool:
        return self.engine is not None and self.engine.alive

    def send(self, cmd: str, **values: Any) -> bool:
        """Send a protocol command to the engine; False (and a notification) if none runs."""
        if not self.engine_alive or not self.engine.send(cmd, **values):
            self.notify("No engine is running: press r to resume the run first.", severity="warning")
            return False
        return True

    def apply_changes(self, changes: dict[str, Any], action: str = "live") -> None:
        """Config changes from a screen: `live` sends a set (or resumes a stopped run with them),
        `restart` restarts the engine from its checkpoint with them, `new_run` starts over."""
        if not changes and action != "new_run":
            return
        if action == "live" and self.engine_alive:
            self.send("set", **changes)
            self.pending = "applying " + ", ".join(f"{k}={v}" for k, v in changes.items())
        elif action in ("live", "restart"):
            self.restart_engine(changes)
        elif action == "new_run":
            self.start_new_run(C.replace(self.config, **changes))

    # ------------------------------------------------------------ state shown

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
        return not self.engine_alive and not self.loading and (self.run_dir / layout.CONFIG).exists()

    # ------------------------------------------------------------ start-up

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen()

    def on_mount(self) -> None:
        loss_chart.preload()
        self.dashboard = self.screen
        self.set_interval(TICK_S, self._tick)
        self.run_worker(self._load_history, thread=True, name="load-history")

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
        if live.state in layout.ACTIVE_STATES and not self.plan.attach:
            live.history.state = "stopped"  # the engine that wrote this is gone
        self.call_from_thread(self._history_loaded, live)

    def _history_loaded(self, live: LiveRun) -> None:
        self.live = live
        self.loading = False
        self.dashboard.rebind()
        if self.plan.attach:
            self._attach_engine()
        elif self.plan.prepare is not None:
            self._prepare_data(self.plan.prepare)
        elif self.plan.start:
            self._start_planned()

    def _prepare_data(self, need: DataToPrepare) -> None:
        from gpttui.screens.prepare_data import PrepareScreen

        self.pending = "preparing the data…"

        def done(ok: bool | None) -> None:
            self.pending = ""
            if ok and self.plan.start:
                self._start_planned()
            elif not ok:
                self.notify("No data: the run can't start. Quit with q.", severity="warning")
        self.push_screen(PrepareScreen(need), done)

    def _start_planned(self) -> None:
        if self.plan.new_run:
            try:
                cfg, _ = directory.prepare(self.loaded.config, self.run_dir)
            except (directory.RunDirError, C.ConfigError) as e:
                self._show_failure(Failure(str(e)))
                return
            self.loaded = C.LoadedConfig(cfg, self.loaded.source, self.loaded.source_text,
                                         self.loaded.overrides)
            self.plan.new_run = False
        self._spawn(self.plan.engine_args)

    def _spawn(self, args: list[str]) -> None:
        self.failure = None
        self.stopping = False
        self.pending = "starting the engine…"
        self._seen_state = None
        self.live.history.state = "starting"  # until the new engine says otherwise
        self.engine = EngineClient(self.run_dir, args)
        self.dashboard.write_log([f"── engine started (pid {self.engine.pid}): "
                                  f"python -m gpttui.engine {self.run_dir} {' '.join(args)}".rstrip()])
        self._sync_bindings()

    def _attach_engine(self) -> None:
        """Watch and drive an engine that is already running (through its control socket)."""
        from gpttui.ipc.control import NotRunning, SocketClient

        try:
            self.engine = SocketClient(self.run_dir, history_from=self._history_end)
        except (NotRunning, OSError) as e:
            self.notify(f"Could not attach: {e}", severity="error")
            return
        self.dashboard.write_log([f"── attached to the engine (pid {self.engine.pid})"])
        self._sync_bindings()

    # ------------------------------------------------------------ the timer

    def _tick(self) -> None:
        try:
            self._drain()
        except Exception as e:  # a display bug must not take the run down with the UI
            self.ui_errors.append(repr(e))
            if len(self.ui_errors) == 1:
                import traceback

                self.dashboard.write_log(traceback.format_exc().splitlines())
                self.notify(f"display error (see the log pane): {e!r}", severity="error")

    def _drain(self) -> None:
        eng = self.engine
        if eng is not None:
            d = eng.drain()
            if d.events:
                for e in d.events:
                    self.live.add(e)
                    self._on_event(e)
                self._notify_errors(d.events)
            if d.stderr:
                self.dashboard.write_log(d.stderr)
            if d.dropped:
                self.live.dropped += d.dropped
            if eng.finished_reading:
                self._engine_exited(eng)
        self._sync_bindings()
        if self.screen is self.dashboard or self.dashboard.is_attached:
            self.dashboard.refresh_panels()

    def _sync_bindings(self) -> None:
        """Re-check which keys apply (the footer recomposes, so only when that changes)."""
        key = (self.engine_alive, self.can_resume)
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

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
                self.notify(f"checkpoint saved at iteration {e.get('iter', 0):,}", timeout=3)
        elif kind == "config":
            changes = e.get("changes") or {}
            self.pending = ""
            if changes:
                self.notify("applied: " + ", ".join(f"{k}={v}" for k, v in changes.items()), timeout=4)


    def _notify_errors(self, events: list[dict[str, Any]]) -> None:
        """Errors the engine survives (a refused `set`, a bad command) as a notification; a fatal
        one (the batch ends in state failed) is left to the failure screen."""
        if self.live.state in layout.FINAL_STATES:
            return
        errors = [e for e in events if e.get("type") == "error" and e.get("message")]
        now = time.monotonic()
        if errors and now - self._error_shown_at > 2:  # a flood of errors must not flood the screen
            self._error_shown_at = now
            self.notify(str(errors[-1]["message"]), severity="error", timeout=6)

    def _engine_exited(self, eng: ProtocolProcess) -> None:
        code = eng.returncode
        self.engine = None
        self.pending = ""
        self.stopping = False
        state = self.live.state
        self.dashboard.write_log([f"── engine exited with code {code}"])
        self._sync_bindings()
        if self.quit_when_stopped:
            self.exit(code)
            return
        if code == 0 and state in ("finished", "stopped"):
            self.notify(f"run {state} at iteration {self.live.iter:,}", timeout=5)
            return
        err = self.live.last_error or {}
        message = (err.get("message") or getattr(eng, "exit_description", "")  # an attached engine's end
                   or f"the engine exited with code {code} while {state or 'starting'}")
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

        def done(choice: str | None) -> None:
            if choice == "resume":
                self.resume_run()
            elif choice == "quit":
                self.exit(1)
        self.push_screen(FailureScreen(failure), done)

    # ------------------------------------------------------------ actions

    def command(self, cmd: str, pending: str = "") -> None:
        if self.send(cmd):
            self.pending = pending
            self._save_asked = self._save_asked or cmd == "save"
            self.dashboard.refresh_panels(force=True)

    def stop_engine(self) -> None:
        if self.send("stop"):
            self.stopping = True
            self.pending = "stopping: saving a checkpoint…"
            self.dashboard.refresh_panels(force=True)

    def resume_run(self) -> None:
        """Start the engine again: from ckpt.pt if there is one, else from scratch."""
        if self.engine_alive:
            self.notify("The engine is already running.")
            return
        if not (self.run_dir / layout.CONFIG).exists():
            self.notify("This run has no config.toml yet: nothing to resume.", severity="warning")
            return
        has_ckpt = (self.run_dir / layout.CKPT).exists()
        self._spawn([f"--init_from={'resume' if has_ckpt else 'scratch'}"])

    def restart_engine(self, changes: dict[str, Any]) -> None:
        """Resume from the checkpoint with `changes` (stopping the running engine first)."""
        args = [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in changes.items()]
        has_ckpt = (self.run_dir / layout.CKPT).exists()
        args.append(f"--init_from={'resume' if has_ckpt else 'scratch'}")
        if self.engine_alive:
            self.stop_engine()
            self._after_stop = args
            self.set_timer(0.2, self._restart_when_stopped)
        else:
            self._spawn(args)

    def _restart_when_stopped(self) -> None:
        if self.engine is not None:
            self.set_timer(0.2, self._restart_when_stopped)
        elif self.failure is None:  # (a failed stop shows its failure screen instead)
            self._spawn(self._after_stop)

    def start_new_run(self, cfg: C.TrainConfig) -> None:
        """Switch to a new run directory (cfg.out_dir) with this config."""
        if self.engine_alive:
            self.notify("Stop the current run first (x), then start the new one.", severity="warning")
            return
        self.run_dir = Path(cfg.out_dir)
        self.loaded = C.LoadedConfig(cfg)
        self.plan = LaunchPlan(self.run_dir, self.loaded, new_run=True)
        self.live = LiveRun()
        self.loading = True
        self.dashboard.rebind()
        self.run_worker(self._load_history, thread=True, name="load-history")

    def request_quit(self) -> None:
        """q: quit; a live engine is asked about first (stop and save, detach, or cancel)."""
        if isinstance(self.screen, ConfirmScreen):
            return  # already asking (a second Ctrl+C)
        if not self.engine_alive:
            self.exit(0)
            return
        if self.stopping:
            self.push_screen(ConfirmScreen(
                "Still saving…", "The engine is writing its checkpoint. Kill it now? "
                "(the last complete checkpoint stays)",
                [Choice("wait", "Wait", "n", "primary"), Choice("kill", "Kill it and quit", "y", "error")]),
                self._kill_answer)
            return
        choices = [Choice("stop", "Stop and save", "y", "primary")]
        if self.can_detach:
            choices.append(Choice("detach", "Detach: leave it training", "d"))
        choices.append(Choice("cancel", "Cancel", "n"))
        self.push_screen(ConfirmScreen(
            "Quit gpttui?", f"The run is at iteration {self.live.iter:,}. Stop it and save a checkpoint first?",
            choices), self._quit_answer)

    @property
    def can_detach(self) -> bool:
        """Whether the engine handle can let the engine train on without this UI (issue 8)."""
        return hasattr(self.engine, "detach")

    def _quit_answer(self, answer: str | None) -> None:
        if answer == "stop":
            self.quit_when_stopped = True
            self.stop_engine()
            if not self.engine_alive:
                self.exit(0)
        elif answer == "detach" and self.engine is not None:
            self.engine.detach()
            self.engine = None
            self.exit(0)

    def _kill_answer(self, answer: str | None) -> None:
        if answer == "kill" and self.engine is not None:
            self.engine.terminate(grace=3.0)
            self.exit(1)

    def action_ctrl_c(self) -> None:
        self.request_quit()

    # ------------------------------------------------------------ shutdown

    def on_unmount(self) -> None:
        """Whatever ends the app, an engine it owns is not left orphaned without a checkpoint."""
        eng = self.engine
        if eng is not None and eng.alive:
            eng.send("stop")
            deadline = time.monotonic() + 30
            while eng.alive and time.monotonic() < deadline:
                time.sleep(0.05)
            if eng.alive:
                eng.terminate(grace=5.0)
