"""`gpttui train` whose engine is killed from outside (kill -9 as the out-of-memory killer does, a
native crash) says why on stderr and exits 128 + the signal's number, never silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
import torch
from kit import TINY, events, wait_for


@pytest.mark.parametrize("sig, cause", [
    (signal.SIGKILL, "was killed by SIGKILL (out of memory?)"),
    (signal.SIGSEGV, "was killed by SIGSEGV"),
])
def test_a_killed_engine_is_said_with_its_signal_and_its_log(char_data, tmp_path, sig, cause):
    run = tmp_path / "run"
    cfg = tmp_path / "c.py"
    values = {**TINY, "data_dir": str(char_data), "out_dir": str(run), "eval_interval": 10}
    cfg.write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    train = subprocess.Popen([sys.executable, "-m", "gpttui", "train", str(cfg)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def saved_then_trained() -> bool:
        assert train.poll() is None, train.communicate()
        evs = events(run) if (run / "metrics.jsonl").exists() else []
        return any(e["type"] == "checkpoint" for e in evs) and any(
            e["type"] == "step" and e["iter"] >= 15 for e in evs)

    try:
        wait_for(saved_then_trained, 120, "a checkpoint, then iteration 15")
        engine = psutil.Process(train.pid).children()[0]  # `gpttui train` runs one engine process
        os.kill(engine.pid, sig)
        out, err = train.communicate(timeout=60)
    finally:
        if train.poll() is None:
            train.kill()
    assert train.returncode == 128 + sig
    assert "Traceback" not in err
    first, *rest = err.splitlines()
    last_step = max(e["iter"] for e in events(run) if e["type"] == "step")
    ckpt = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=True)  # the file is the truth:
    assert ckpt["iter_num"] >= 10  # a kill may land between its write and its event
    assert first == (f"error: the engine (pid {engine.pid}) {cause} after iteration {last_step}; "
                     f"the last checkpoint is {run}/ckpt.pt at iteration {ckpt['iter_num']}, "
                     f"best val loss {float(ckpt['best_val_loss']):.4f}; resume with `gpttui train {run}`")
    assert rest[0] == f"{run}/engine.log ends:"
    log = [line for line in (run / "engine.log").read_text().splitlines() if line.strip()]
    if sig == signal.SIGSEGV:  # a native crash: its dump's header and the crashing thread's stack
        assert rest[1] == "  Fatal Python error: Segmentation fault"
        assert rest[2].startswith("  Current thread ") and "(most recent call first)" in rest[2]
        assert any("gpttui/engine/" in line for line in rest[3:])
    else:  # the last lines of the log, the last step among them
        assert rest[1:] == [f"  {line}" for line in log][-5:]
