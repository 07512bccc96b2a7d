"""Faults the engine meets: kills, signals, NaN, a full disk, garbage commands, torn metrics,
a second engine. Real processes on a tiny model; each test asserts what survived."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from kit import ckpt_iter, events, wait_for

from gpttui.engine.durable import FAULT_DISK_FULL_ENV, FAULT_SLOW_SAVE_ENV
from gpttui.engine.trainer import FAULT_NAN_ENV
from gpttui.ipc.client import SocketClient
from gpttui.run import engine_state
from gpttui.run.history import RunHistory
from gpttui.run.metrics import read_events


def _steps(evs):
    return [e for e in evs if e["type"] == "step"]


def test_kill9_mid_checkpoint_keeps_the_previous_one_and_resume_continues(make_run, engines):
    rd = make_run(eval_interval=40)
    eng = engines(rd, env={FAULT_SLOW_SAVE_ENV: "3"})
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] == 40, what="checkpoint at 40")
    eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "saving" and e["iter"] == 80,
                   what="the checkpoint at 80 being written")
    time.sleep(0.5)  # inside the write: the temporary file is there, ckpt.pt not yet replaced
    assert any(p.name.startswith(".ckpt.pt.tmp") for p in rd.iterdir())
    eng.kill9()
    assert ckpt_iter(rd / "ckpt.pt") == 40
    st = engine_state.status(rd)
    assert st.kind == "stale" and st.info.state == "saving"
    before = _steps(events(rd))
    assert before[-1]["iter"] == 79  # step events carry nanoGPT's iter: 0 .. iter_num - 1

    again = engines(rd, ["--init_from=resume"])
    hello = again.wait_event(lambda e: e["type"] == "hello")
    assert hello["start_iter"] == 40
    again.wait_iter(50)
    assert not any(p.name.startswith(".ckpt.pt.tmp") for p in rd.iterdir())  # the half file is cleaned up
    resumed = [e for e in again.seen if e["type"] == "step"]
    # the same batches from the same weights: the loss curve continues where the checkpoint was
    first_run = {e["iter"]: e["loss"] for e in before}
    for e in resumed[:5]:
        assert e["loss"] == pytest.approx(first_run[e["iter"]], abs=1e-4)
    again.signal(signal.SIGTERM)
    assert again.wait(30) == 0


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(make_run, engines):
    rd = make_run(eval_interval=1000)
    eng = engines(rd)
    eng.wait_iter(30)
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0
    eng.pump()
    last = _steps(eng.seen)[-1]["iter"] + 1  # iterations done (step events count from 0)
    assert [e["state"] for e in eng.seen if e["type"] == "state"][-1] == "stopped"
    assert any(e["type"] == "checkpoint" and e["iter"] == last for e in eng.seen)
    assert ckpt_iter(rd / "ckpt.pt") == last
    st = engine_state.status(rd)
    assert st.kind == "none" and st.info.state == "stopped" and st.info.exit_code == 0
    assert not (rd / "engine.sock").exists()


def test_a_second_signal_exits_at_once_leaving_the_last_complete_checkpoint(make_run, engines):
    rd = make_run(eval_interval=20)
    eng = engines(rd, env={FAULT_SLOW_SAVE_ENV: "2"})
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] == 20, what="checkpoint at 20")
    eng.wait_iter(25)
    eng.signal(signal.SIGTERM)
    eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "saving" and e["iter"] > 20,
                   what="the stop's checkpoint being written")
    # two signals sent within one scheduling slice merge into one in the kernel (POSIX signals
    # don't queue); a person's second Ctrl+C comes far later, still inside this 2 s write
    time.sleep(0.3)
    eng.signal(signal.SIGTERM)
    # killed by the signal itself, inside the (2 s) write: the stop's checkpoint never landed,
    # so the last complete one stands (waiting for the write would have exited 0 at a later iter)
    assert eng.wait(10) == -signal.SIGTERM
    assert ckpt_iter(rd / "ckpt.pt") == 20


def test_nan_loss_stops_the_run_naming_the_iteration_and_keeps_the_checkpoint(make_run, engines):
    rd = make_run(eval_interval=30)
    eng = engines(rd, env={FAULT_NAN_ENV: "45"})
    assert eng.wait(60) == 1
    eng.pump()
    errors = [e["message"] for e in eng.seen if e["type"] == "error"]
    assert len(errors) == 1 and "non-finite loss" in errors[0] and "iter 45" in errors[0]
    assert [e["state"] for e in eng.seen if e["type"] == "state"][-1] == "failed"
    assert ckpt_iter(rd / "ckpt.pt") == 30
    assert max(e["iter"] for e in _steps(events(rd))) == 44  # no step from the bad one on


def _disk_full_then_freed(rd, eng, fill, free, real_disk=False):
    """Fill the disk mid-run; check the engine pauses and says so; free it; resume (the hook's
    run by the resume key, the real disk's by itself); check nothing was lost from metrics.jsonl.
    On a real disk a live `set` meanwhile still applies, and reaches config.toml once freed."""
    eng.wait_iter(25)
    fill()
    err = eng.wait_event(lambda e: e["type"] == "error" and "disk full" in e["message"], what="disk full error")
    assert "paused" in err["message"] and "Free some space" in err["message"] and "by itself" in err["message"]
    eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "paused" and e.get("reason") == "disk full")
    # engine.json says so too (rewritten in place when no temporary file fits on the disk)
    wait_for(lambda: engine_state.read_info(rd).reason == "disk full", 10, "engine.json: paused, disk full")
    time.sleep(1.0)
    assert eng.alive and engine_state.read_info(rd).state == "paused"
    paused_at = engine_state.read_info(rd).iter
    if real_disk:  # config.toml can't be rewritten either: said, and the change still applies
        assert eng.send("set", max_iters=90_000)
        eng.wait_event(lambda e: e["type"] == "error" and "config.toml not updated" in e["message"])
        eng.wait_event(lambda e: e["type"] == "config" and e["changes"] == {"max_iters": 90_000})
        assert eng.alive
    free()
    if not real_disk:
        assert eng.send("resume")  # the dashboard's resume key
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] >= paused_at, what="checkpoint after freeing")
    eng.wait_iter(paused_at + 30)
    assert ckpt_iter(rd / "ckpt.pt") >= paused_at
    if real_disk:
        assert "max_iters = 90000" in (rd / "config.toml").read_text()
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0
    # metrics.jsonl: every line whole, every step once, the error and the pause recorded
    lines = (rd / "metrics.jsonl").read_text().splitlines()
    evs = [json.loads(line) for line in lines]
    steps = [e["iter"] for e in evs if e["type"] == "step"]
    assert steps == list(range(len(steps)))
    assert any(e["type"] == "error" and "disk full" in e["message"] for e in evs)
    assert any(e["type"] == "state" and e.get("reason") == "disk full" for e in evs)


def test_full_disk_pauses_and_resumes_after_space_is_freed_hook(make_run, engines, tmp_path):
    rd = make_run(eval_interval=40)
    flag = tmp_path / "disk-is-full"
    eng = engines(rd, env={FAULT_DISK_FULL_ENV: str(flag)})
    _disk_full_then_freed(rd, eng, flag.touch, flag.unlink)


def test_a_pause_you_asked_for_outlasts_the_full_disk_that_came_during_it(make_run, engines, tmp_path):
    rd = make_run(eval_interval=1000)
    flag = tmp_path / "disk-is-full"
    eng = engines(rd, env={FAULT_DISK_FULL_ENV: str(flag)})
    eng.wait_iter(10)
    assert eng.send("pause")
    paused = eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "paused", what="paused")
    flag.touch()
    assert eng.send("save")
    eng.wait_event(lambda e: e["type"] == "error" and "disk full writing the checkpoint" in e["message"])
    flag.unlink()
    eng.wait_event(lambda e: e["type"] == "log" and "still paused" in e["message"], what="space seen again")
    saved = eng.wait_event(lambda e: e["type"] == "checkpoint", what="the held-back save")
    assert saved["iter"] == paused["iter"] and ckpt_iter(rd / "ckpt.pt") == paused["iter"]
    time.sleep(1.0)
    eng.pump()
    assert not [e for e in eng.seen if e["type"] == "step" and e["iter"] >= paused["iter"]]
    assert engine_state.read_info(rd).state == "paused"
    assert eng.send("resume")
    eng.wait_iter(paused["iter"] + 5)
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0


@pytest.fixture
def tiny_fs(tmpfs):
    """A 3 MB tmpfs (root only); skipped where mounting is not allowed (the hook test covers it)."""
    return tmpfs("small-disk", "3m")


def test_full_disk_pauses_and_resumes_on_a_real_small_file_system(make_run, engines, tiny_fs):
    rd = make_run(name=str(tiny_fs / "run"), eval_interval=40, keep_checkpoints=1)
    eng = engines(rd)
    filler = tiny_fs / "filler"
    _disk_full_then_freed(rd, eng, lambda: _fill(filler), filler.unlink, real_disk=True)


def _fill(path, leave=0):
    """Write `path` until the disk is full, then give back `leave` bytes. Full as the file system
    counts it (statvfs): a write refused while it still counts room (memory pressure on a tmpfs?)
    is tried again, a page at a time."""
    with open(path, "wb", buffering=0) as f:
        chunk, tries = 65536, 0
        while tries < 100:
            try:
                f.write(b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                st = os.statvfs(path)
                if st.f_bavail * st.f_frsize < 4096:
                    break
                chunk, tries = 4096, tries + 1
                time.sleep(0.02)
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))


def _disk(mnt):
    """What a file system holds, for a failure's message: its free bytes, its device and each file's size."""
    try:
        st = os.statvfs(mnt)
        files = {str(p.relative_to(mnt)): p.stat().st_size for p in mnt.rglob("*") if p.is_file()}
        return f"free {st.f_bavail * st.f_frsize}, device {os.stat(mnt).st_dev}, files {files}"
    except OSError as e:   # a file renamed away while listed
        return f"unreadable ({e})"


def test_a_checkpoint_that_no_longer_fits_pauses_then_resumes_by_itself(make_run, engines, tiny_fs):
    """The real fault of the issue: metrics lines still fit, the checkpoint doesn't, and torch
    reports ENOSPC as a RuntimeError. Nothing is sent to the engine: freeing space is enough."""
    rd = make_run(name=str(tiny_fs / "run"), eval_interval=40, keep_checkpoints=1, max_iters=130)
    eng = engines(rd)
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] == 40, what="checkpoint at 40")
    assert eng.send("pause")  # held while the disk fills, so a loaded machine can't let it reach 80 first
    eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "paused", what="paused")
    filler = tiny_fs / "filler"
    _fill(filler, leave=48 << 10)  # room for ~40 iterations of log and metrics lines, not a checkpoint
    room = _disk(tiny_fs)
    assert eng.send("resume")
    try:
        err = eng.wait_event(lambda e: e["type"] == "error" and "disk full" in e["message"], what="disk full error")
    except AssertionError as e:   # seen twice under load, not alone: say what the disk held
        raise AssertionError(f"{e}\nafter the fill: {room}\nnow: {_disk(tiny_fs)}") from None
    # the eval at 80's checkpoint, as a rule; once, in the suite under load, 80's still fitted and
    # 120's did not (not reproduced in 10 runs alone under the same load; the cause is not known)
    m = re.search(r"writing the checkpoint at iter (\d+) \(No space left on device\)", err["message"])
    assert m and int(m.group(1)) in (80, 120), err["message"]
    kept = max(e["iter"] for e in eng.seen if e["type"] == "checkpoint")
    paused = eng.wait_event(lambda e: e["type"] == "state" and e["state"] == "paused"
                            and e.get("reason") == "disk full")
    wait_for(lambda: engine_state.read_info(rd).reason == "disk full", 10, "engine.json: paused, disk full")
    assert kept == int(m.group(1)) - 40 and ckpt_iter(rd / "ckpt.pt") == kept  # the previous checkpoint loads, whole
    assert not [p.name for p in rd.iterdir() if ".tmp" in p.name]
    assert eng.alive and not any(e["type"] == "state" and e["state"] == "failed" for e in eng.seen)
    filler.unlink()
    assert eng.wait(90) == 0  # resumed by itself, finished
    eng.pump()
    states = [(e["state"], e.get("reason")) for e in eng.seen if e["type"] == "state"]
    assert states.index(("paused", "disk full")) < len(states) - 1 - states[::-1].index(("running", None))
    assert states[-1] == ("finished", "max_iters=130 reached")
    assert any(e["type"] == "log" and "resuming" in e["message"] for e in eng.seen)
    assert any(e["type"] == "checkpoint" and e["iter"] == paused["iter"] for e in eng.seen)  # the held one
    assert ckpt_iter(rd / "ckpt.pt") == 130
    steps = [e["iter"] for e in events(rd) if e["type"] == "step"]
    assert steps == list(range(130))


def test_a_learning_rate_change_without_room_for_its_undo_point_is_refused(make_run, engines, tiny_fs):
    rd = make_run(name=str(tiny_fs / "run"), eval_interval=1000, keep_checkpoints=1)
    eng = engines(rd)
    eng.wait_iter(5)
    before = (rd / "config.toml").read_bytes()
    _fill(tiny_fs / "filler", leave=48 << 10)  # lines still fit, a copy of the run's state doesn't
    assert eng.send("set", learning_rate=1e-3)
    err = eng.wait_event(lambda e: e["type"] == "error" and "set refused" in e["message"], what="the refusal")
    assert err["message"] == ("set refused: could not keep the state from before the change for undo "
                              "(disk full)")
    assert (rd / "config.toml").read_bytes() == before
    assert not any(e["type"] in ("config", "undo") for e in eng.seen)
    assert not [p.name for p in rd.iterdir() if "undo" in p.name or ".tmp" in p.name]
    now = eng.seen[-1]["iter"]
    eng.wait_iter(now + 10)  # trains on, at the old rate
    eng.pump()
    assert [e["lr"] for e in eng.seen if e["type"] == "step"][-1] > 2e-3
    eng.signal(signal.SIGKILL)


def test_a_checkpoint_carrying_code_is_refused_with_a_plain_message(make_run, engines, tmp_path):
    import torch

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    rd = make_run()
    torch.save({"model": Payload(), "model_args": {}, "iter_num": 1}, rd / "ckpt.pt")
    eng = engines(rd, ["--init_from=resume"])
    assert eng.wait(60) == 2  # refused input at its start (README: 2)
    eng.pump()
    message = next(e["message"] for e in eng.seen if e["type"] == "error")
    assert message.startswith(f"{rd / 'ckpt.pt'}: not a readable checkpoint")
    assert "system" in message and "refuses" in message and "Traceback" not in message
    assert not marker.exists()


def test_garbage_on_stdin_and_on_the_socket_is_answered_and_ignored(make_run, engines):
    rd = make_run(eval_interval=1000)
    eng = engines(rd)
    eng.wait_iter(5)
    for line in ("not json at all\n", '{"cmd": "explode"}\n', "[1, 2]\n", '{"cmd":"set","values":{"n_layer":9}}\n'):
        eng.proc.stdin.write(line.encode())
    eng.proc.stdin.flush()
    eng.wait_event(lambda e: e["type"] == "error" and "n_layer" in e["message"], what="four error events")
    messages = [e["message"] for e in eng.seen if e["type"] == "error"]
    assert "not JSON" in messages[0] and "explode" in messages[1] and "n_layer" in messages[3]

    sock = SocketClient(rd)
    sock.send_line("\x00\xff garbage\n")
    sock.send_line('{"cmd": 42}\n')
    got = []
    wait_for(lambda: got.extend(sock.drain().events) or sum(e["type"] == "error" for e in got) >= 2,
             what="errors on the socket")
    eng.pump()
    now = eng.seen[-1]["iter"]
    eng.wait_iter(now + 20)  # still training
    assert sum(e["type"] == "error" for e in eng.seen) == 4  # socket errors go to their sender only
    sock.close()
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0


def test_a_torn_last_line_of_metrics_loses_nothing_before_it(make_run, engines):
    rd = make_run(max_iters=40, eval_interval=20)
    eng = engines(rd)
    assert eng.wait(60) == 0
    whole = list(read_events(rd / "metrics.jsonl"))
    with open(rd / "metrics.jsonl", "a") as f:
        f.write('{"type":"step","iter":41,"t":1.0,"loss":2.')  # a kill mid-write
    history = RunHistory.from_metrics(rd / "metrics.jsonl")
    assert list(read_events(rd / "metrics.jsonl")) == whole
    assert history.last_iter == 40 and len(history.evals) == 3 and history.skipped_lines == 1
    # the next session appends after the torn line without gluing onto it
    again = engines(rd, ["--init_from=resume", "--max_iters=50"])
    assert again.wait(60) == 0
    evs = list(read_events(rd / "metrics.jsonl"))
    assert evs[:len(whole)] == whole
    assert any(e["type"] == "hello" and e["start_iter"] == 40 for e in evs[len(whole):])
    assert max(e["iter"] for e in evs if e["type"] == "step") == 49


def test_a_second_engine_on_the_same_directory_is_refused(make_run, engines):
    rd = make_run(eval_interval=1000)
    first = engines(rd)
    first.wait_iter(3)
    second = subprocess.run([sys.executable, "-m", "gpttui.engine", str(rd)], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert second.returncode == 3
    assert f"engine pid {first.pid}" in second.stderr and f"gpttui attach {rd}" in second.stderr
    assert json.loads(second.stdout)["type"] == "error"
    hellos = [e for e in events(rd) if e["type"] == "hello"]
    assert len(hellos) == 1 and hellos[0]["pid"] == first.pid  # the second wrote nothing there
    assert first.alive
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0


def test_a_stop_on_a_full_disk_with_no_checkpoint_ever_written_says_the_weights_are_lost(char_data, tmp_path, tmpfs):
    """A 200 KB disk the first checkpoint (~350 KB) never fits: training pauses; a stop then has
    nothing to keep and says so, exit 1 (a failed write), not "the last complete one is kept"."""
    full = tmpfs("full", "200k")
    cfg = tmp_path / "c.py"
    cfg.write_text("".join(f"{k} = {v!r}\n" for k, v in {
        "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "batch_size": 4, "max_iters": 100_000,
        "lr_decay_iters": 100_000, "eval_interval": 3, "eval_iters": 2, "log_interval": 1, "device": "cpu",
        "compile": False, "threads": 1, "data_dir": str(char_data), "out_dir": str(full / "run")}.items()))
    proc = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("disk full writing"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if "weights are lost" in line]
    assert "none was ever written, the run's weights are lost" in err and "disk full" in err
    assert "the last complete one is kept" not in out + err and "Traceback" not in out + err
    assert not (full / "run" / "ckpt.pt").exists()
