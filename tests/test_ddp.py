"""Several processes under torchrun on CPU (gloo): one event stream, commands reach every rank,
`gpttui train --nproc_per_node=2` end to end, and a fault on one rank ends the whole job once."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from engine_kit import TINY, EngineProc, make_char_data, prepare_run, read_events, step_losses

from gpttui.commands import train
from gpttui.engine import checkpoint as K
from gpttui.ipc import process

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_char_data(tmp_path_factory.mktemp("data"), n_chars=30_000)


def write_config(path: Path, data: Path, out: Path, **over) -> Path:
    values = {**TINY, "data_dir": str(data), "out_dir": str(out), "max_iters": 20, "lr_decay_iters": 20,
              "eval_interval": 10, "gradient_accumulation_steps": 2, **over}
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    return path


def gpttui_train(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpttui", "train", *args, "--nproc_per_node=2"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, **(env or {})})


def test_two_processes_train_together_and_stop_together(tmp_path):
    data = make_char_data(tmp_path / "data", n_chars=30_000)
    run = prepare_run(data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000,
                      gradient_accumulation_steps=2)
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gpttui.engine")
    eng = EngineProc(run, launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    eng.wait_step(3, timeout=120)
    eng.send({"cmd": "pause"})
    paused = eng.wait_state("paused")
    time.sleep(1.5)  # both ranks hold: rank 1 waits on rank 0's broadcasts
    assert max(e["iter"] for e in eng.events if e["type"] == "step") < paused["iter"]
    eng.send({"cmd": "resume"})
    eng.wait_step(paused["iter"] + 2)
    eng.send({"cmd": "stop"})
    assert eng.finish(timeout=120) == 0, eng.stderr  # torchrun exits only when both ranks have

    hellos = read_events(run, "hello")
    assert len(hellos) == 1 and hellos[0]["world_size"] == 2
    assert hellos[0]["tokens_per_iter"] == 2 * 8 * 16  # accumulation split across the ranks
    assert read_events(run, "state")[-1]["state"] == "stopped"
    losses = step_losses(run)
    assert sorted(losses) == list(range(len(losses)))  # one stream: each iteration once
    ckpt = K.load(run / "ckpt.pt")
    assert ckpt["iter_num"] == len(losses)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def worker_pipes(launcher_pid: int) -> dict[str, tuple[str, str, str]]:
    """RANK -> what fds 0, 1, 2 of each torchrun worker under `launcher_pid` point at."""
    out = {}
    for p in psutil.Process(launcher_pid).children(recursive=True):
        rank = p.environ().get("RANK")
        if rank is not None and "gpttui.engine" in p.cmdline():
            out[rank] = tuple(os.readlink(f"/proc/{p.pid}/fd/{fd}") for fd in range(3))
    return out


def test_train_cli_two_processes_stop_on_sigterm_then_resume(data, tmp_path):
    run = tmp_path / "out"
    cfg = write_config(tmp_path / "c.py", data, run, max_iters=100_000, lr_decay_iters=100_000)
    proc = gpttui_train(str(cfg), "--device=cpu")
    for line in proc.stdout:
        if line.startswith("iter 5:"):
            break
    pipes = worker_pipes(proc.pid)
    assert set(pipes) == {"0", "1"}
    assert pipes["0"][0].startswith("pipe:")  # rank 0 reads the commands
    assert pipes["1"][0] == os.devnull and pipes["1"][1] == pipes["1"][2]  # rank 1: no stdin, no stdout
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err  # stopped by a signal, checkpoint saved
    assert "Traceback" not in out + err and "stopped at iter" in out
    assert err == "stopping: saving a checkpoint (Ctrl+C again to quit without one)\n"
    stopped = read_events(run, "state")[-1]
    assert stopped["state"] == "stopped" and stopped["iter"] > 5
    assert K.load(run / "ckpt.pt")["iter_num"] == stopped["iter"]
    assert "nproc" not in (run / "config.toml").read_text()

    end = stopped["iter"] + 5
    resumed = gpttui_train(str(run), f"--max_iters={end}", f"--lr_decay_iters={end}")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"Resuming training from {run}" in out and "Traceback" not in out + err
    assert [h["world_size"] for h in read_events(run, "hello")] == [2, 2]
    iters = [e["iter"] for e in read_events(run, "step")]
    assert iters == list(range(end))  # one stream across the stop: each iteration once
    assert read_events(run, "state")[-1]["state"] == "finished"
    assert sorted(p.name for p in run.glob("ckpt*.pt")) == ["ckpt.pt"]
    assert K.load(run / "ckpt.pt")["iter_num"] == end
    assert "nproc" not in (run / "config.toml").read_text()


def test_non_finite_loss_on_one_rank_stops_both_at_that_iteration(data, tmp_path):
    run = tmp_path / "out"
    cfg = write_config(tmp_path / "c.py", data, run)
    proc = gpttui_train(str(cfg), env={"GPTTUI_FAULT_NAN_AT": "13", "GPTTUI_FAULT_NAN_RANK": "1"})
    out, err = proc.communicate(timeout=120)  # torchrun exits: neither rank waits on the other
    assert proc.returncode == 1
    # rank 0's own loss was finite: it learned of rank 1's at that very iteration
    assert err == (f"error: non-finite loss nan on rank 1 at iter 13; stopped before the optimizer step, "
                   f"the last good checkpoint ({run / 'ckpt.pt'}) is kept\n")
    assert "Traceback" not in out
    failed = read_events(run, "state")[-1]
    assert failed["state"] == "failed" and failed["iter"] == 13
    assert max(step_losses(run)) == 12
    assert K.load(run / "ckpt.pt")["iter_num"] == 10


# A fault on one rank, injected from outside: a sitecustomize.py on PYTHONPATH patches the
# engine in the process of one rank (product code has no hook for it).
INJECT = '''
import os
if os.environ.get("RANK") == os.environ["FAIL_RANK"]:
    from gpttui.engine import batches, checkpoint
    def failing(original, n):
        calls = [0]
        def call(*args):
            calls[0] += 1
            if calls[0] == n:
                raise {error}
            return original(*args)
        return call
    {patch}
'''


@pytest.mark.parametrize("rank, error, patch, message", [
    (1, 'ValueError("bad batch")', "batches.Batches.get = failing(batches.Batches.get, 8)",
     "rank 1 failed: ValueError: bad batch"),
    (0, 'PermissionError(13, "Permission denied")', "checkpoint.save = failing(checkpoint.save, 2)",
     "PermissionError: [Errno 13] Permission denied"),
], ids=["rank 1 reading a batch", "rank 0 writing a checkpoint"])
def test_an_error_on_one_rank_ends_the_job_once(data, tmp_path, rank, error, patch, message):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT.format(error=error, patch=patch))
    run = tmp_path / "out"
    cfg = write_config(tmp_path / "c.py", data, run, eval_interval=5)
    proc = gpttui_train(str(cfg), env={"FAIL_RANK": str(rank), "PYTHONPATH": str(inject)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err == f"error: {message}\n"  # said once: not by rank 0 and the failed rank, nor torchrun
    assert "Traceback" not in out
    failed = read_events(run, "state")[-1]
    assert failed["state"] == "failed" and failed["reason"] == message
    assert K.load(run / "ckpt.pt")["iter_num"] == 5  # the last checkpoint stands


def test_runner_flags_are_torchruns_and_never_config_overrides():
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    args, extra = p.parse_known_args(["c.py", "--nproc_per_node=4", "--max_iters=5", "--nnodes", "1"])
    assert extra == ["--max_iters=5"]
    assert train.runner_flags(args) == ["--nproc_per_node=4", "--nnodes=1", "--standalone"]
    two = p.parse_args(["c.py", "--nproc-per-node=8", "--nnodes=2", "--node_rank=1",
                        "--master_addr=10.0.0.1", "--master_port=29500"])
    assert train.runner_flags(two) == ["--nproc_per_node=8", "--nnodes=2", "--node_rank=1",
                                       "--master_addr=10.0.0.1", "--master_port=29500"]
    rdzv = p.parse_args(["c.py", "--nnodes=2", "--rdzv_endpoint=head:29400"])
    assert train.runner_flags(rdzv) == ["--nproc_per_node=1", "--nnodes=2", "--rdzv_endpoint=head:29400",
                                        "--rdzv_backend=c10d"]
    assert train.runner_flags(p.parse_args(["c.py"])) == []
    assert process.engine_argv("run", ["--max_iters=5"], ["--standalone", "--nproc_per_node=2"]) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "gpttui.engine", "run", "--max_iters=5"]


REPORT = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/torch/distributed/run.py", line 1032, in <module>
    main()
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
gpttui.engine FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-02_06:35:57
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 5826)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_06:35:57
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 5827)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_torchruns_report_is_one_line_and_errors_are_said_once(tmp_path):
    lines = ["W1202 06:35:57.104000 5814 torch/distributed/elastic/multiprocessing/api.py:1028] "
             "Sending process 5826 closing signal SIGTERM\n",
             "iter 3: loss 3.1\n", "error: rank 1 failed: boom\n", "error: boom\n",
             *REPORT.splitlines(keepends=True)]
    for said_before, expected in ((True, "error: rank 1 failed: boom\n"),
                                  (False, "error: rank 1 was killed by SIGKILL; the job ended\n")):
        out, err = (tmp_path / "out").open("w+"), (tmp_path / "err").open("w+")
        output = train.EngineOutput(out, err, torchrun=True)
        for line in lines if said_before else lines[:2] + lines[4:]:
            output.line(line)
        output.end()
        out.seek(0), err.seek(0)
        assert out.read() == "iter 3: loss 3.1\n" and err.read() == expected


def test_header_shows_the_world_size():
    from textual.app import App

    from gpttui.analysis.live import LiveRun
    from gpttui.widgets.header import RunHeader

    class HeaderApp(App):
        def compose(self):
            yield RunHeader()

    async def go() -> str:
        app = HeaderApp()
        async with app.run_test(size=(160, 3)):
            live = LiveRun()
            live.add({"type": "hello", "iter": 0, "t": 1.0, "device": "cuda:0", "device_name": "NVIDIA H100",
                      "world_size": 8, "dtype": "bfloat16", "tokens_per_iter": 524288})
            header = app.query_one(RunHeader)
            header.show(live, Path("out"), "", None)
            return str(header.render())

    assert "NVIDIA H100 ×8" in asyncio.run(go())


@pytest.mark.timeout(240)
def test_the_dashboard_drives_a_two_process_job(tmp_path, monkeypatch):
    """What `gpttui launch CONFIG --nproc_per_node=2` sets up: every engine the app starts (here
    the first, then a resume with r) is a torchrun job; pause and stop reach both ranks."""
    from app_helpers import run, tiny_config, wait_for

    from gpttui.app import GpttuiApp
    from gpttui.commands.launch import make_plan
    from gpttui.screens.confirm import ConfirmScreen

    monkeypatch.setattr(process.EngineClient, "runner", ["--nproc_per_node=2", "--nnodes=1", "--standalone"])
    plan = make_plan(str(tiny_config(tmp_path, gradient_accumulation_steps=2)), [], world=2)

    async def go() -> tuple[str, int]:
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(140, 40)) as pilot:
            shown = app.screen.query_one("#header")
            # (the header is drawn in the dashboard's next frame, at most half a second after the hello)
            await wait_for(pilot, lambda: ctl.live.iter >= 3 and "cpu ×2" in str(shown.render()), 120,
                           "steps from the job, and the header naming its two processes")
            header = str(shown.render())
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the stop question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not ctl.engine_alive and ctl.engine is None, 60, "the job to stop")
            stopped_at = ctl.live.iter
            await pilot.press("r")
            await wait_for(pilot, lambda: ctl.live.iter > stopped_at + 2, 120, "the resumed job to train")
            await pilot.press("q")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 30, "the quit question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not app.is_running, 60, "the app to exit")
            return header, stopped_at

    header, stopped_at = run(go())
    assert "cpu ×2" in header
    assert [(h["world_size"], h["start_iter"]) for h in read_events(plan.run_dir, "hello")] == [(2, 0), (2, stopped_at)]
    assert [s["state"] for s in read_events(plan.run_dir, "state")][-1] == "stopped"
    iters = [e["iter"] for e in read_events(plan.run_dir, "step")]
    assert iters == list(range(len(iters)))  # each iteration once, across the stop
