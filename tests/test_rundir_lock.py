"""A start refused because an engine trains in the run directory changes no file of that run;
a start that would replace a run says what it replaces (--force) or refuses naming --force."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_kit import gpttui, read_events, tiny_config, write_py_config

from gpttui.commands import launch
from gpttui.fs import lock
from gpttui.run import config as C
from gpttui.run import directory, engine_state

LONG = dict(max_iters=100_000, lr_decay_iters=100_000)


def snapshot(run_dir: Path) -> dict[str, str]:
    """Every file of the run that a start could touch, by content (the engine's own moving files
    aside, with the temporary file of engine.json's atomic rewrite: the running engine's heartbeat)."""
    moving = {"metrics.jsonl", "engine.json", "engine.log", "engine.sock", "engine.lock"}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.iterdir()) if p.is_file() and p.name not in moving
            and not p.name.startswith(".engine.json.")}


class Training:
    """`gpttui train CONFIG` running in the background until stop() (a stop command on its stdin)."""

    def __init__(self, config: Path, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(config)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 120
        while True:
            info = engine_state.read_info(run_dir)
            if info is not None and info.state == "running" and engine_state.status(run_dir).kind == "alive":
                return
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.1)

    def stop(self) -> subprocess.CompletedProcess:
        out, err = self.proc.communicate('{"cmd": "stop"}\n', timeout=120)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


@pytest.fixture
def training():
    started: list[Training] = []

    def start(config: Path, run_dir: Path) -> Training:
        t = Training(config, run_dir)
        started.append(t)
        return t

    yield start
    for t in started:
        info = engine_state.read_info(t.run_dir)
        t.kill()
        if info is not None and engine_state.status(t.run_dir).kind == "alive":
            subprocess.run(["kill", "-9", str(info.pid)], check=False)


def test_a_start_refused_by_a_running_engine_leaves_its_run_untouched(char_data, tmp_path, training):
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, eval_interval=100_000, **LONG)
    engine = training(cfg, run)
    before = snapshot(run)
    assert "config.toml" in before and "ckpt.pt" not in before  # a run with no checkpoint yet

    attempts = [
        ("train", str(cfg), "--n_layer=4"),               # no checkpoint: no --force needed to get this far
        ("train", str(cfg), "--force", "--n_layer=4"),
        ("train", str(run), "--init_from=scratch", "--n_embd=64"),
    ]
    for args in attempts:
        r = gpttui(*args)
        assert r.returncode == 3, (args, r.stderr)
        assert r.stderr.startswith(f"error: {run} is already being trained by engine pid ")
        assert f"gpttui attach {run}" in r.stderr and "Traceback" not in r.stderr
        assert snapshot(run) == before, args

    with pytest.raises(directory.RunDirLocked, match="already being trained"):
        launch.make_plan(str(cfg), ["--n_layer=4"], force=True)
    assert snapshot(run) == before

    done = engine.stop()
    assert done.returncode == 0, done.stderr
    assert C.load(run).config.n_layer == 2
    stopped_at = read_events(run, "state")[-1]["iter"]
    again = gpttui("train", str(run), f"--max_iters={stopped_at + 3}")
    assert again.returncode == 0, again.stderr  # the stopped run resumes: its config was not touched
    assert f"Resuming training from {run}" in again.stdout


def test_replacing_a_run_is_said_or_refused_naming_force(char_data, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, max_iters=10, lr_decay_iters=10)
    assert gpttui("train", str(cfg)).returncode == 0
    before = snapshot(run)

    refused = gpttui("train", str(cfg))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {run}: already holds a run (ckpt.pt at iteration 10")
    assert "--force" in refused.stderr and refused.stderr.count("\n") == 1
    assert snapshot(run) == before
    with pytest.raises(launch.LaunchError, match="replace it with --force"):
        launch.make_plan(str(cfg), [])
    with pytest.raises(launch.LaunchError, match="no data yet; prepare it first"):
        launch.make_plan(str(cfg), [f"--data_dir={tmp_path / 'not-yet'}"], force=True)
    assert snapshot(run) == before
    plan = launch.make_plan(str(cfg), ["--max_iters=7", "--lr_decay_iters=7"], force=True)
    assert plan.run_dir == run and C.load(run).config.max_iters == 7
    assert capsys.readouterr().err.startswith(f"warning: --force: replacing the run in {run} (ckpt.pt at iteration 10")

    forced = gpttui("train", str(cfg), "--force", "--max_iters=5", "--lr_decay_iters=5")
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr.startswith(f"warning: --force: replacing the run in {run} (ckpt.pt at iteration 10")
    assert C.load(run).config.max_iters == 5


def test_a_refused_start_in_a_new_directory_leaves_no_directory(char_data, tmp_path):
    new = tmp_path / "a" / "b" / "run"
    with pytest.raises(directory.RunDirError, match="no checkpoint to resume from"):
        directory.prepare(tiny_config(char_data, new, init_from="resume"))
    assert not (tmp_path / "a").exists()

    made = tmp_path / "made"
    directory.prepare(tiny_config(char_data, made))
    assert sorted(p.name for p in made.iterdir()) == ["config.toml", "engine.lock"]


def test_the_command_hands_the_lock_to_its_engine_with_no_moment_free(char_data, tmp_path):
    """Between config.toml written and the engine training, no other start can take the run."""
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, max_iters=30, lr_decay_iters=30)
    train = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    probes, free = 0, 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and train.poll() is None:
        info = engine_state.read_info(run)
        if info is not None and info.state == "running":
            break
        if (run / "config.toml").exists():
            probes += 1
            free += not lock.is_held(run / "engine.lock")
        time.sleep(0.005)
    assert train.wait(timeout=120) == 0, train.stderr.read() if train.stderr else ""
    assert probes > 10 and free == 0, f"the run's lock was free at {free} of {probes} probes"
