"""Read-only, missing-permission and full targets, for real: a tmpfs remounted read-only, a
directory without write permission for a process stripped of root's override capability, a
tmpfs filled up. Every command says one line naming the path and the cause, exits non-zero,
leaves nothing half-made; reading commands still work from a read-only run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from engine_kit import TINY, gpttui

TRAIN_FLAGS = [f"--{k}={v}" for k, v in {**TINY, "max_iters": 10, "lr_decay_iters": 10,
                                         "eval_interval": 10, "dataset": "tiny_char"}.items()]


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    return r.stderr.strip()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, char_data) -> Path:
    """A working directory with nanoGPT's data/tiny_char and a finished 10-iteration run in run/."""
    work = tmp_path_factory.mktemp("work")
    shutil.copytree(char_data, work / "data" / "tiny_char")
    r = gpttui("train", *TRAIN_FLAGS, "--out_dir=run", cwd=work)
    assert r.returncode == 0, r.stderr
    return work


@pytest.fixture
def read_only(tmpfs, finished_run):
    """A tmpfs holding a copy of the run and a text file, then remounted read-only."""
    mnt = tmpfs("ro", "8m")
    shutil.copytree(finished_run / "run", mnt / "run")
    (mnt / "input.txt").write_text("to be, or not to be\n" * 50)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    return mnt


def test_training_commands_on_a_read_only_file_system(read_only, finished_run):
    ro, work = read_only, finished_run
    config_before = (ro / "run" / "config.toml").read_bytes()
    cases = [
        (("train", *TRAIN_FLAGS, f"--out_dir={ro}/new"), f"error: cannot write {ro}/new: Read-only file system"),
        (("train", str(ro / "run"), "--max_iters=20"),
         f"error: cannot write {ro}/run/engine.lock: Read-only file system"),
        (("train", *TRAIN_FLAGS, f"--out_dir={ro}/run", "--force"),
         f"error: cannot write {ro}/run/engine.lock: Read-only file system"),
        (("launch", *TRAIN_FLAGS, f"--out_dir={ro}/new"), f"error: cannot write {ro}/new: Read-only file system"),
        (("launch", str(ro / "run")), f"error: cannot write {ro}/run: Read-only file system; an engine can't "
                                      f"train there (`gpttui open {ro}/run` shows it read-only)"),
    ]
    for args, line in cases:
        r = gpttui(*args, cwd=work)
        assert r.returncode == 1 and one_line(r) == line, (args, r.stderr)
    demo = gpttui("launch", cwd=ro)  # the demo would be made in the current directory
    assert demo.returncode == 1 and one_line(demo) == f"error: cannot write {ro}/gpttui-demo: Read-only file system"
    assert (ro / "run" / "config.toml").read_bytes() == config_before
    assert sorted(p.name for p in ro.iterdir()) == ["input.txt", "run"]


def test_output_commands_on_a_read_only_file_system(read_only, finished_run):
    ro, work = read_only, finished_run
    r = gpttui("export", str(ro / "run"), "-o", str(ro / "steps.csv"), cwd=work)
    assert r.returncode != 0 and one_line(r) == f"error: cannot write {ro}/steps.csv: Read-only file system"
    r = gpttui("prepare", str(ro / "input.txt"), "--tokenizer", "char", "--out", str(ro / "data"), cwd=work)
    line = one_line(r)
    assert r.returncode != 0 and line.startswith(f"error: {ro}/data") and "Read-only file system" in line
    assert sorted(p.name for p in ro.iterdir()) == ["input.txt", "run"]

    # reading a read-only run is no error
    r = gpttui("sample", f"--out_dir={ro}/run", "--num_samples=1", "--max_new_tokens=10", cwd=work)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("---------------"), r.stderr
    r = gpttui("config", str(ro / "run"), cwd=work)
    assert r.returncode == 0 and "n_layer = 2" in r.stdout
    r = gpttui("doctor", str(ro / "run"), cwd=work)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_a_directory_without_write_permission(tmp_path, finished_run):
    """root ignores permission bits; setpriv drops that override for the command, as for any user."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: no way to drop root's permission override")
    wrap = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if subprocess.run([*wrap, "touch", str(locked / "probe")], capture_output=True).returncode == 0:
        pytest.skip("the write went through: this process keeps a permission override setpriv can't drop")
    work = finished_run
    for args, line in [
        (("train", *TRAIN_FLAGS, f"--out_dir={locked}/a/run"), f"error: {locked}/a: Permission denied"),
        (("launch", *TRAIN_FLAGS, f"--out_dir={locked}/a/run"), f"error: {locked}/a: Permission denied"),
        (("export", str(work / "run"), "-o", str(locked / "steps.csv")),
         f"error: {locked}/steps.csv: Permission denied"),
    ]:
        r = gpttui(*args, cwd=work, wrap=wrap)
        assert r.returncode != 0 and one_line(r) == line, (args, r.stderr)
    assert list(locked.iterdir()) == []

    run = shutil.copytree(work / "run", tmp_path / "run")  # a run whose metrics.jsonl the user can't append to
    (run / "metrics.jsonl").chmod(0o444)
    config = (run / "config.toml").read_bytes()
    for args, line in [
        (("train", str(run), "--max_iters=20"), f"error: {run}/metrics.jsonl: Permission denied"),
        (("launch", str(run)), f"error: cannot write {run}/metrics.jsonl: Permission denied; an engine can't "
                               f"train there (`gpttui open {run}` shows it read-only)"),
    ]:
        r = gpttui(*args, cwd=work, wrap=wrap)
        assert r.returncode == 1 and one_line(r) == line, (args, r.stderr)
    assert (run / "config.toml").read_bytes() == config


def test_a_start_on_a_full_disk_says_so_and_leaves_nothing(tmpfs, finished_run):
    full = tmpfs("full", "64k")
    with open(full / "filler", "wb", buffering=0) as f:
        try:
            f.write(b"\0" * (1 << 20))
        except OSError:
            pass  # full (a raw write may also stop short without an error)
    r = gpttui("train", *TRAIN_FLAGS, f"--out_dir={full}/a/run", cwd=finished_run)
    assert r.returncode == 1
    assert one_line(r) == f"error: cannot write {full}/a/run/config.toml: No space left on device"
    assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no directory, lock or temporary left
