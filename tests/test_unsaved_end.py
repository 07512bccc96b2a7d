"""A run whose last checkpoint could not be written never looks like a success: `gpttui train`
on a real tmpfs that fills, stopped by a command,
Ctrl+C or SIGTERM, or reaching max_iters. What the user sees: the exit code, the one error line,
engine.json through `gpttui attach RUN --status`, and ckpt.pt."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from engine_kit import gpttui, read_events, wait_for, write_py_config

from gpttui.engine.checkpoint import load
from gpttui.run import engine_state

# a tiny run whose first eval after iteration 0 is at max_iters: checkpoints come only when asked
RUN = dict(n_layer=1, batch_size=4, max_iters=100_000, lr_decay_iters=100_000, eval_interval=100_000,
           always_save_checkpoint=True, keep_checkpoints=1)
LEAVE = 48 << 10  # bytes left after filling: room for log and metrics lines, not for a checkpoint (~180 KB)


class Train:
    """`gpttui train CONFIG` with a command pipe; its output collected off-thread."""

    def __init__(self, cfg: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(s, into), daemon=True)
                        for s, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 90) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self.readers:
            t.join(10)
        return code

    def errors(self) -> list[str]:
        return [line.rstrip("\n") for line in self.err if line.startswith("error:")]


def fill(path: Path, leave: int = LEAVE) -> None:
    """Write `path` until its file system is full, then give back `leave` bytes."""
    with open(path, "wb", buffering=0) as f:
        for block in (65536, 4096):   # large blocks, then the last small ones
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    os.truncate(path, max(0, path.stat().st_size - leave))


def ckpt_iter(run: Path) -> int:
    return load(run / "ckpt.pt")["iter_num"]


def state(run: Path) -> str:
    info = engine_state.read_info(run)
    return f"{info.state}: {info.reason}" if info else ""


def saved_while_paused(run: Path, train: Train) -> int:
    """Pause before the first step, save a checkpoint (iteration 0, before any eval), and wait for it."""
    train.send("pause")
    train.send("save")
    wait_for(lambda: (run / "metrics.jsonl").exists() and read_events(run, "checkpoint"), 60, "the first checkpoint")
    return ckpt_iter(run)


@pytest.fixture
def started(tmp_path: Path, char_data: Path) -> Iterator[Callable[..., Train]]:
    """started(run, **config) -> Train. At the end, whatever still runs is killed: the command, and
    the engine of each run in started.dirs (it runs in a session of its own, and trains on headless)."""
    trains: list[Train] = []
    dirs: list[Path] = []

    def start(run: Path, **over: Any) -> Train:
        dirs.append(run)
        trains.append(Train(write_py_config(tmp_path / "c.py", char_data, run, **{**RUN, **over})))
        return trains[-1]

    start.dirs = dirs  # type: ignore[attr-defined]
    yield start
    for t in trains:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait(10)
    for run in dirs:
        st = engine_state.status(run)
        if st.kind == "alive" and st.info is not None:
            try:
                os.kill(st.info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("how, code", [("command", 1), (signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["stop-command", "SIGINT", "SIGTERM"])
def test_a_stop_whose_checkpoint_finds_the_disk_full_exits_non_zero_naming_what_is_kept(
        tmpfs, started, how, code):
    disk = tmpfs("disk", "3m")
    run = disk / "run"
    train = started(run)
    kept = saved_while_paused(run, train)
    fill(disk / "filler")
    train.send("resume")
    wait_for(lambda: any(line.startswith("iter 20:") for line in train.out), 60, "iteration 20")
    if how == "command":  # what `gpttui attach` and the dashboard's x key send
        train.send("stop")
    else:
        train.proc.send_signal(how)
    assert train.wait() == code, "".join(train.err[-5:])
    [line] = train.errors()
    stopped_at = read_events(run, "state")[-1]["iter"]
    assert line == (f"error: stopped at iter {stopped_at}, but its weights were not saved (disk full: No space "
                    f"left on device); the last complete checkpoint is kept: {run / 'ckpt.pt'} at iteration {kept}")
    assert stopped_at > kept and ckpt_iter(run) == kept
    assert "Traceback" not in "".join(train.out + train.err)
    # told apart from a clean stop: the state's reason and the engine's exit code
    info = engine_state.read_info(run)
    assert info.state == "stopped" and info.reason == line.removeprefix("error: ") and info.exit_code == 1
    status = gpttui("attach", str(run), "--status")
    assert status.returncode == 1 and "were not saved (disk full: No space left on device)" in status.stdout


def paused_at_max_iters_on_a_full_disk(tmpfs, started) -> tuple[Path, Path, Train]:
    """A 60-iteration run whose disk fills after its first checkpoint: it reaches max_iters and pauses
    there, its last checkpoint not written. (disk, run, its train)."""
    disk = tmpfs("disk", "3m")
    run = disk / "run"
    train = started(run, max_iters=60, eval_interval=60)
    saved_while_paused(run, train)
    fill(disk / "filler")
    train.send("resume")
    wait_for(lambda: state(run) == "paused: disk full", 60, f"a pause at max_iters (now {state(run)!r})")
    return disk, run, train


def test_max_iters_on_a_full_disk_waits_for_room_instead_of_finishing_without_its_checkpoint(tmpfs, started):
    disk, run, train = paused_at_max_iters_on_a_full_disk(tmpfs, started)
    assert engine_state.read_info(run).iter == 60 and train.proc.poll() is None  # not "finished"
    assert any("disk full writing the checkpoint at iter 60" in line for line in train.out)
    (disk / "filler").unlink()
    assert train.wait() == 0, "".join(train.err[-5:])  # room again: saved by itself, then finished
    assert ckpt_iter(run) == 60 and state(run) == "finished: max_iters=60 reached"
    assert [e["iter"] for e in read_events(run, "eval")] == [0, 60]  # the pause did not evaluate again
    assert train.errors() == []


def test_max_iters_on_a_full_disk_then_a_stop_exits_1_saying_the_final_weights_were_not_saved(tmpfs, started):
    _, run, train = paused_at_max_iters_on_a_full_disk(tmpfs, started)
    train.send("stop")
    assert train.wait() == 1
    [line] = train.errors()
    assert line == ("error: stopped at iter 60, but its weights were not saved (disk full: No space left on "
                    f"device); the last complete checkpoint is kept: {run / 'ckpt.pt'} at iteration 0")
    assert ckpt_iter(run) == 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("keys", ["xy", "qy"], ids=["stop-key", "quit-stop-and-save"])
def test_the_dashboard_shows_a_stop_whose_checkpoint_found_the_disk_full_as_an_error(char_data, tmpfs, started,
                                                                                    keys):
    """x (or quitting with "stop and save") on a full disk: the failure screen says which weights
    were lost; quitting from it, or having quit, the app exits 1."""
    from app_helpers import wait_for as app_wait
    from engine_kit import prepare_run

    from gpttui.app import GpttuiApp
    from gpttui.commands.launch import make_plan
    from gpttui.screens.failure import FailureScreen

    disk = tmpfs("disk", "3m")
    run = prepare_run(char_data, disk / "run", **{**RUN, "eval_interval": 20})
    started.dirs.append(run)  # its engine is killed at the end, whatever happens here
    shown = {}

    async def go() -> None:
        app = GpttuiApp(make_plan(str(run), []))
        ctl = app.controller
        async with app.run_test(size=(120, 40)) as pilot:
            await app_wait(pilot, lambda: ctl.live.last_checkpoint_iter, 60, "a checkpoint")
            fill(disk / "filler")
            await app_wait(pilot, lambda: ctl.display_state == "paused", 60, "the disk-full pause")
            for key in keys:
                await pilot.press(key)
                await pilot.pause(0.3)
            if keys == "xy":
                await app_wait(pilot, lambda: isinstance(app.screen, FailureScreen), 60, "the failure screen")
                shown["message"] = app.screen.failure.message
                await pilot.press("q")
            await app_wait(pilot, lambda: not app.is_running, 60, "the app to exit")
        shown["code"] = app.return_code or app.return_value  # what run_app makes the exit code
        shown["shell"] = ctl.farewell                          # what run_app prints in the shell after it

    asyncio.run(go())
    if keys == "xy":
        assert shown["message"].startswith("stopped at iter ") and "its weights were not saved (disk full" in shown["message"]
    else:   # quit: no failure screen to read it on, so the shell says it
        assert shown["shell"].startswith("error: stopped at iter ") and "its weights were not saved (disk full" in shown["shell"]
    assert shown["code"] == 1
