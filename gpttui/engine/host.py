"""What lets an engine outlive its UI: the run lock, engine.json, the control socket, UI loss.

`EngineHost` is rank 0's companion for the engine's whole life:
  - it takes RUN_DIR/engine.lock (a second engine on the directory is refused, naming the first
    and how to attach) and keeps RUN_DIR/engine.json current (state, iteration, heartbeat);
  - it serves RUN_DIR/engine.sock: every event the channel emits goes to attached UIs, and
    their commands join stdin's in the same queue;
  - when the UI that spawned the engine goes away (stdin reaches end of input on a pipe, or
    stdout/stderr break) it queues an internal `ui_lost` command once; the trainer then
    checkpoints and, by config.on_ui_lost, trains on detached ("detach") or stops ("stop").
    The dead pipes are pointed at /dev/null so no stray write can fail later; the human log
    goes on in RUN_DIR/engine.log and the events in metrics.jsonl and on the socket;
  - a start refused before training (the config, checkpoint, data or device) takes back what
    this engine wrote: metrics.jsonl and engine.log are cut back to where they ended, engine.json
    says again what it said (files that were not there are removed), so the run stays as it was.
Torch-free (like channel.py), engine-only.
"""

from __future__ import annotations

import faulthandler
import os
import re
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from gpttui.ipc.server import ControlServer, socket_path
from gpttui.run import engine_state, layout, protocol

UI_LOST = "ui_lost"  # internal command (never read from a pipe or socket: not in protocol.COMMANDS)


def stdin_is_pipe() -> bool:
    """Only a pipe's end of input means a UI went away (not /dev/null, a file or a terminal)."""
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


class EngineHost:
    def __init__(self, run_dir: str | Path, push: Any) -> None:
        """`push(Command)` queues a command for the training loop (CommandReader.push)."""
        self.run_dir = Path(run_dir)
        self.push = push
        self.status = engine_state.EngineStatus(self.run_dir)
        self.server: ControlServer | None = None
        self._lost = threading.Event()

    def start(self) -> None:
        """Take the run lock (raises engine_state.RunLocked), listen on the socket, start the heartbeat."""
        self.status.acquire()
        self._ends = {name: _size(self.run_dir / name) for name in (layout.METRICS, layout.ENGINE_LOG)}
        remove_leftovers(self.run_dir)
        # A crash in native code (segfault, abort) leaves its Python stack in engine.log,
        # which an attached UI shows as the engine's last words.
        self._crash_log = open(self.run_dir / layout.ENGINE_LOG, "a")
        faulthandler.enable(self._crash_log)
        # no pipe on stdin: nobody to detach from (a shell's `< /dev/null`, `gpttui train`)
        self.status.update(ui="attached" if stdin_is_pipe() else "headless")
        try:
            server = ControlServer(socket_path(self.run_dir), self.push)
            server.start()
        except OSError as e:  # e.g. a file system without sockets: train anyway, unattachable
            print(f"warning: no control socket ({e}); `gpttui attach` won't reach this engine",
                  file=sys.stderr, flush=True)
        else:
            self.server = server
            self.status.update(socket=str(server.path))
        self.status.start()

    def listener(self, ev: dict[str, Any], line: str) -> None:
        """Channel listener: every event to socket clients; state and iteration to engine.json."""
        if self.server is not None:
            self.server.publish(ev, line)
        type_ = ev.get("type")
        if type_ == "step":
            self.status.update(iter=ev["iter"])
        elif type_ == "state":
            self.status.update(state=ev["state"], reason=ev.get("reason", ""), iter=ev["iter"])

    def ui_lost(self, why: str, broken: bool = False) -> None:
        """The spawning UI is gone (`broken`: its pipes fail on write). Safe from any thread."""
        if broken:
            _silence_stdio()
        if self._lost.is_set():
            return
        self._lost.set()
        self.status.update(ui="detached")
        self.push(protocol.Command(UI_LOST, {"why": why}))

    def close(self, exit_code: int, refused: bool = False) -> None:
        """Stop serving, record the exit code, release the lock (the state was already published).
        `refused`: the start was refused before training; the run's files are put back as they
        were (the events stay closed: call after the channel's close)."""
        if self.server is not None:
            self.server.close()
        if refused:
            for name, end in self._ends.items():
                _cut_back(self.run_dir / name, end)
        self.status.close(exit_code=exit_code, restore=refused)


def _size(path: Path) -> int | None:
    """The file's size, None when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _cut_back(path: Path, end: int | None) -> None:
    """A file this engine appended to, back to its size `end` (None: removed)."""
    try:
        if end is None:
            path.unlink(missing_ok=True)
        else:
            os.truncate(path, end)
    except OSError:
        pass  # as it stands, the run's record says the refusal


# Temporary files of atomic writes (checkpoint.save, rundir.write_config, runstate): a dead
# engine's are garbage once we hold the lock.
_LEFTOVER = re.compile(r"^\.[\w.-]+\.(tmp\d+|\d+\.tmp)$")


def remove_leftovers(run_dir: Path) -> list[str]:
    """Delete the half-written temporary files a killed engine left behind; their names."""
    gone = []
    for p in run_dir.iterdir():
        if _LEFTOVER.match(p.name) and p.is_file():
            try:
                p.unlink()
                gone.append(p.name)
            except OSError:
                pass
    return gone


def _silence_stdio() -> None:
    """Point fds 1 and 2 at /dev/null: the reader is gone, and a write to a dead pipe must never
    become an exception in some library's print or warning."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
