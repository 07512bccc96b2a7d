"""`gpttui train` and run-directory preparation: what a nanoGPT user types, what they see."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engine_kit import CHAR_DATA_CHARS, SHAKESPEARE, gpttui, prepare_run, read_events, tiny_config, write_py_config

from gpttui.engine.durable import FAULT_SLOW_SAVE_ENV
from gpttui.run import config as C
from gpttui.run import directory, engine_state


def test_train_prints_nanogpt_lines_then_resumes_from_the_run_dir(char_data, tmp_path):
    out = tmp_path / "out-tiny"
    cfg = write_py_config(tmp_path / "train_tiny.py", char_data, out)
    first = gpttui("train", str(cfg))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"Overriding config with {cfg}:"
    assert "tokens per iteration will be: 128" in lines
    assert any(line.startswith("number of parameters: 0.03M") for line in lines)
    assert "step 10: train loss" in first.stdout and f"saving checkpoint to {out}" in lines
    assert any(line.startswith("iter 19: loss ") and line.endswith(tuple("0123456789")) and "tok/s" in line
               for line in lines)
    assert first.stderr == ""

    again = gpttui("train", str(out), "--max_iters=30", "--lr_decay_iters=30")
    assert again.returncode == 0, again.stderr
    assert "Overriding: max_iters = 30" in again.stdout and f"Resuming training from {out}" in again.stdout
    assert "iter 20: loss" in again.stdout and "iter 19:" not in again.stdout
    assert C.load(out).config.max_iters == 30  # kept for the next resume
    assert read_events(out, "hello")[-1]["start_iter"] == 20


def test_stop_from_a_pipe_checkpoints_and_exits_zero(char_data, tmp_path):
    cfg = write_py_config(tmp_path / "c.py", char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    r = gpttui("train", str(cfg), stdin='{"cmd": "stop"}\n')
    assert r.returncode == 0, r.stderr
    assert "stopped at iter" in r.stdout
    assert read_events(tmp_path / "run", "state")[-1]["state"] == "stopped"
    assert (tmp_path / "run" / "ckpt.pt").is_file()


@pytest.mark.parametrize("args, message", [
    (["--data_dir=/nonexistent/data"], "/nonexistent/data: data directory not found"),
    (["--block_size=40000"], "needs at least 40001"),
    (["--n_lyer=3"], "unknown config key 'n_lyer' (did you mean 'n_layer'?)"),
    (["--n_layer=three"], "n_layer: expected int, got 'three'"),
    (["--n_embd=33"], "n_embd: 33 is not divisible by n_head=2"),
])
def test_bad_input_is_one_clear_line(char_data, tmp_path, args, message):
    cfg = write_py_config(tmp_path / "c.py", char_data, tmp_path / "run")
    r = gpttui("train", str(cfg), *args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and message in r.stderr
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_missing_bin_and_clobbering_are_refused(char_data, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "train.bin").write_bytes((char_data / "train.bin").read_bytes())
    cfg = write_py_config(tmp_path / "c.py", lone, tmp_path / "run")
    r = gpttui("train", str(cfg))
    assert r.returncode == 2 and f"{lone / 'val.bin'}: missing" in r.stderr

    cfg = write_py_config(tmp_path / "c.py", char_data, tmp_path / "run", max_iters=10, lr_decay_iters=10)
    assert gpttui("train", str(cfg)).returncode == 0
    r = gpttui("train", str(cfg))
    assert r.returncode == 2 and "already holds a run" in r.stderr
    r = gpttui("train", str(tmp_path / "run"), "--n_embd=64", "--n_head=2")
    assert r.returncode == 2
    assert "n_embd is 32 in the checkpoint but 64 in the config" in r.stderr
    assert C.load(tmp_path / "run").config.n_embd == 32  # the run's config was not touched
    assert gpttui("train", str(cfg), "--force").returncode == 0


def test_a_truncated_checkpoint_is_refused_input_exit_2(char_data, tmp_path):
    """The engine refuses ckpt.pt before training: refused input (2, README), not a failed run (1)."""
    run = prepare_run(char_data, tmp_path / "run")
    (run / "ckpt.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 200)   # a zip cut short
    r = gpttui("train", str(run))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "ckpt.pt: not a readable checkpoint" in r.stderr and "Traceback" not in r.stdout + r.stderr


def test_non_finite_loss_exits_nonzero_naming_the_iteration(char_data, tmp_path):
    cfg = write_py_config(tmp_path / "c.py", char_data, tmp_path / "run")
    r = subprocess.run([sys.executable, "-m", "gpttui", "train", str(cfg)], capture_output=True, text=True,
                       timeout=120, env={**__import__("os").environ, "GPTTUI_FAULT_NAN_AT": "13"})
    assert r.returncode == 1
    assert "error: non-finite loss nan at iter 13" in r.stderr
    assert "last good checkpoint" in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_nanogpt_out_dir_without_config_toml_resumes(char_data, tmp_path):
    """A directory with only nanoGPT's ckpt.pt: its saved config is read without torch."""
    first = tmp_path / "first"
    directory.prepare(tiny_config(char_data, first, max_iters=10, lr_decay_iters=30), first)
    assert gpttui("train", str(first), "--init_from=scratch", "--force").returncode == 0
    ng = tmp_path / "out-nanogpt"
    ng.mkdir()
    (ng / "ckpt.pt").write_bytes((first / "ckpt.pt").read_bytes())
    r = gpttui("train", str(ng), "--max_iters=15")
    assert r.returncode == 0, r.stderr
    assert "iter 10: loss" in r.stdout and "iter 14: loss" in r.stdout
    assert C.load(ng).config.n_embd == 32 and C.load(ng).config.init_from == "resume"


def test_prepare_writes_absolute_data_dir_and_refuses_resume_without_checkpoint(char_data, tmp_path):
    cfg = tiny_config(char_data, tmp_path / "run")
    written, info = directory.prepare(cfg)
    assert Path(written.data_dir).is_absolute()
    assert info.vocab_size == len(set(SHAKESPEARE.read_text(encoding="utf-8")[:CHAR_DATA_CHARS]))
    assert C.load(tmp_path / "run").config == written
    with pytest.raises(directory.RunDirError, match="no checkpoint to resume from"):
        directory.prepare(C.replace(cfg, init_from="resume"))
    with pytest.raises(directory.RunDirError, match="vocab_size: 10 is smaller than the data's vocabulary"):
        directory.prepare(C.replace(cfg, vocab_size=10))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_with_a_checkpoint(char_data, tmp_path, sig, code):
    cfg = write_py_config(tmp_path / "c.py", char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    proc = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("iter 5:"):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code  # interrupted, not done: `gpttui train ... && next` stops here
    assert "stopping: saving a checkpoint" in err and "stopped at iter" in out
    stopped = read_events(tmp_path / "run", "state")[-1]
    assert stopped["state"] == "stopped" and stopped["iter"] > 5
    # our stdin stayed open, so the engine never thought its UI had gone
    assert "went away" not in (tmp_path / "run" / "engine.log").read_text()


def run_files(run: Path) -> dict[str, bytes]:
    """Every file of a run that is not the lock (whose pid line each engine rewrites), by content."""
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file() and p.name != "engine.lock"}


def test_a_refused_resume_changes_no_file_of_the_run(char_data, tmp_path):
    """What the engine would refuse about a resume is refused before anything is written, for
    train and launch alike; what only the engine can find (a checkpoint torch can't read) leaves
    the run as it was too: no overrides in config.toml, no 'failed' in engine.json or metrics.jsonl."""
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, max_iters=10, lr_decay_iters=10)
    assert gpttui("train", str(cfg)).returncode == 0
    before = run_files(run)
    refusals = [
        (("train", str(run), "--optimizer=muon"),
         f"error: {run / 'ckpt.pt'}: optimizer is 'adamw' in the checkpoint but 'muon' in the config; "
         f"resume with --optimizer=adamw"),
        (("launch", str(run), "--n_layer=3"), f"error: {run / 'ckpt.pt'}: n_layer is 2 in the checkpoint but 3"),
        (("launch", str(run), "--optimizer=muon"), "optimizer is 'adamw' in the checkpoint but 'muon'"),
        (("train", str(run), "--dataset=nonexistent"), "data/nonexistent: data directory not found"),
    ]
    for args, message in refusals:
        r = gpttui(*args, cwd=tmp_path, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and message in r.stderr, (args, r.stderr)
        assert run_files(run) == before, args

    good = (run / "ckpt.pt").read_bytes()
    (run / "ckpt.pt").write_bytes(good[:3000])  # only torch finds out: the engine refuses it
    r = gpttui("train", str(run), "--max_iters=20")
    assert r.returncode == 2 and "ckpt.pt: not a readable checkpoint" in r.stderr
    assert run_files(run) == {**before, "ckpt.pt": good[:3000]}
    status = gpttui("attach", str(run), "--status")
    assert "the last one finished (max_iters=10 reached) at iteration 10" in status.stdout

    (run / "ckpt.pt").write_bytes(good)
    again = gpttui("train", str(run), "--max_iters=12", "--lr_decay_iters=12")
    assert again.returncode == 0, again.stderr
    assert "finished at iter 12" in again.stdout and C.load(run).config.max_iters == 12


def test_a_new_dataset_for_a_run_is_trained_on(char_data, tmp_path):
    """--dataset on a run whose config.toml pins data_dir moves the data to data/<dataset>."""
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, max_iters=10, lr_decay_iters=10)
    assert gpttui("train", str(cfg)).returncode == 0
    other = tmp_path / "data" / "other"
    other.mkdir(parents=True)
    for name in ("train.bin", "val.bin", "meta.pkl"):
        (other / name).write_bytes((char_data / name).read_bytes())
    r = gpttui("train", str(run), "--dataset=other", "--max_iters=12", "--lr_decay_iters=12", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"found vocab_size = 61 (inside {other})" in r.stdout
    written = C.load(run).config
    assert written.dataset == "other" and written.data_dir == str(other)


def test_a_new_run_its_engine_refuses_leaves_no_directory(tmp_path):
    """Token ids past the vocabulary are found by the engine only (no meta.pkl to read): the
    refused start leaves neither the run directory nor the directories made above it."""
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        (np.arange(4000) % 100).astype(np.uint16).tofile(data / f"{split}.bin")
    out = tmp_path / "a" / "b" / "run"
    r = gpttui("train", f"--data_dir={data}", f"--out_dir={out}", "--vocab_size=50", "--n_layer=1", "--n_head=2",
               "--n_embd=32", "--block_size=16", "--batch_size=2", "--max_iters=1", "--device=cpu",
               "--compile=False")
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "largest id in the file: 99" in errors[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()

    kept = tmp_path / "kept"  # a directory that was there before keeps only what it held
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    r = gpttui("train", f"--data_dir={data}", f"--out_dir={kept}", "--vocab_size=50", "--n_layer=1", "--n_head=2",
               "--n_embd=32", "--block_size=16", "--batch_size=2", "--max_iters=1", "--device=cpu",
               "--compile=False")
    assert r.returncode == 2 and sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_a_second_ctrl_c_is_recorded_as_the_user_quitting(char_data, tmp_path):
    """Two SIGINTs 20 ms apart, the stop's checkpoint still being written: exit 130, and engine.json
    says the user quit, not that the engine died."""
    run = tmp_path / "run"
    cfg = write_py_config(tmp_path / "c.py", char_data, run, max_iters=100_000, lr_decay_iters=100_000)
    proc = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, FAULT_SLOW_SAVE_ENV: "5"})
    for line in proc.stdout:
        if line.startswith("iter 5:"):
            break
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "error: quit without a checkpoint (a second Ctrl+C)" in err
    info = engine_state.read_info(run)
    assert info is not None and info.state == "stopped" and info.exit_code == 130
    assert not (run / "engine.sock").exists()
    status = gpttui("attach", str(run), "--status")
    assert "the last one stopped (quit by a second Ctrl+C, without a checkpoint)" in status.stdout
    assert "died" not in status.stdout
