"""Two CPU processes under torchrun (gloo): one event stream, commands reach every rank."""

from __future__ import annotations

import time

import torch

from engine_kit import EngineProc, make_char_data, prepare_run, read_events, step_losses
from gpttui.engine import checkpoint as K


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
