"""A real `gpttui prepare` with two worker processes, killed from outside while it tokenizes:
kill -9 leaves no worker and no resource tracker behind (they watch the parent), SIGTERM, SIGHUP
and SIGINT unwind: no process left, no .partial file, no output directory it made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_kit import SHAKESPEARE

TEXT = SHAKESPEARE.read_text(encoding="utf-8")
# Started in a thread, as the dashboard does (a parent-death signal would follow the thread).
IN_A_THREAD = """
import sys, threading
from gpttui.data.prepare import prepare
t = threading.Thread(target=prepare, args=([sys.argv[1]], sys.argv[2]), kwargs={"workers": 2})
t.start()
t.join()
"""


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory) -> Path:
    """~60 MB of text: several seconds of tokenizing on two busy cores."""
    texts = [TEXT[i:i + 3000] for i in range(0, len(TEXT) - 3000, 997)] * 18
    path = tmp_path_factory.mktemp("src") / "big.parquet"
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), path, row_group_size=200)
    return path


@pytest.fixture
def start():
    """start(src, out, thread=False): the prepare process once both workers tokenize and
    train.bin.partial has data, and its descendants then (the workers and multiprocessing's
    resource tracker). Whatever a failing test leaves running is killed after it."""
    started: list[psutil.Process] = []

    def go(src: Path, out: Path, thread: bool = False) -> tuple[subprocess.Popen, list[psutil.Process]]:
        proc, kids = _start(src, out, thread)
        started.extend([psutil.Process(proc.pid), *kids])
        return proc, kids

    yield go
    for p in started:
        if not gone(p):
            p.kill()


def _start(src: Path, out: Path, thread: bool) -> tuple[subprocess.Popen, list[psutil.Process]]:
    argv = ([sys.executable, "-c", IN_A_THREAD, str(src), str(out)] if thread else
            [sys.executable, "-m", "gpttui", "prepare", str(src), "--out", str(out), "--workers", "2"])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = out / "train.bin.partial"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "prepare never got going"
        kids = psutil.Process(proc.pid).children(recursive=True)
        workers = [k for k in kids if "spawn_main" in " ".join(_cmdline(k))]
        if len(workers) == 2 and partial.exists() and partial.stat().st_size > 0:
            return proc, kids
        time.sleep(0.02)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE   # exited; waits for its new parent to reap it
    except psutil.NoSuchProcess:
        return True


def assert_all_exit(procs: list[psutil.Process], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [f"{p.pid} {' '.join(_cmdline(p))[:100]}" for p in procs if not gone(p)] == []


@pytest.mark.parametrize("thread", [False, True], ids=["cli", "from-a-thread"])
def test_kill_9_leaves_no_worker_and_no_tracker(start, big_parquet, tmp_path, thread):
    proc, kids = start(big_parquet, tmp_path / "data", thread)
    assert len(kids) >= 3                       # two workers and the resource tracker
    proc.kill()
    proc.wait()
    assert_all_exit(kids)
    assert not (tmp_path / "data" / "train.bin").exists()   # only the .partial a kill -9 can't remove


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_unwinds_workers_partials_and_the_directory(start, big_parquet, tmp_path, sig):
    out = tmp_path / "new" / "data"
    proc, kids = start(big_parquet, out)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.strip() == f"interrupted: nothing written to {out}"
    else:
        assert proc.returncode == 128 + sig
        assert err.strip() == f"{sig.name}: stopped, nothing written to {out}"
    assert_all_exit(kids)
    assert not (tmp_path / "new").exists()      # it made both levels: both are gone


def test_a_signal_keeps_the_previous_output_and_its_directory(start, big_parquet, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc, kids = start(big_parquet, out)
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert_all_exit(kids)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
