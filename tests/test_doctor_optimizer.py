"""The doctor names the run's optimizer (and Muon's learning rate) and the forecast says when a
run is not AdamW's."""

import json
import math
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.analysis import doctor
from gpttui.run import config as C
from gpttui.run import protocol, sizing
from gpttui.run.history import load_run
from gpttui.run.metrics import MetricsWriter


def write_run(run: Path, optimizer: str) -> None:
    """A finished-looking metrics.jsonl: hello with the full config, then steps and falling evals."""
    cfg = C.build({"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "batch_size": 8,
                   "gradient_accumulation_steps": 1, "vocab_size": 65, "max_iters": 1000, "lr_decay_iters": 1000,
                   "warmup_iters": 50, "learning_rate": 1e-3, "min_lr": 1e-4, "eval_interval": 50,
                   "device": "cpu", "optimizer": optimizer, "muon_lr": 0.03})
    total, nano, non_emb = sizing.count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, 65, cfg.bias)
    run.mkdir()
    t = 1000.0
    with MetricsWriter(run / "metrics.jsonl") as w:
        w.write({**protocol.event("hello", 0, version=1, config=cfg.to_dict(), max_iters=cfg.max_iters,
                                  params={"total": total, "nanogpt": nano, "non_embedding": non_emb},
                                  tokens_per_iter=512, start_iter=0, device="cpu", peak_flops=None), "t": t})
        for i in range(0, 601):
            t += 0.05
            if i % cfg.eval_interval == 0:
                val = 1.6 + 2.6 * math.exp(-i / 150)
                w.write({**protocol.event("eval", i, train_loss=val - 0.05, val_loss=val, best_val_loss=val), "t": t})
            w.write({**protocol.event("step", i, loss=1.6 + 2.6 * math.exp(-i / 150), lr=1e-3, dt_ms=50.0,
                                      tokens_per_s=512 / 0.05, mfu=None, grad_norm=1.0,
                                      tokens=(i + 1) * 512), "t": t})


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_the_doctor_states_the_optimizer_and_the_forecast_names_muon(tmp_path, capsys, optimizer):
    write_run(tmp_path / "run", optimizer)
    r = doctor.diagnose(load_run(tmp_path / "run"))
    params = next(f for f in r.findings if f.key == "params")
    if optimizer == "muon":
        assert ("optimizer muon: Muon lr 3.0e-02 (momentum 0.95) on the block matrices, "
                "AdamW lr 1.0e-03 on the embeddings and 1-D gains/biases") in params.lines
        assert "optimizer muon (muon_lr 3.0e-02 on the same schedule)" in r.forecast_note
    else:
        assert "optimizer adamw: lr 1.0e-03, weight decay 0.1" in params.lines
        assert "optimizer" not in r.forecast_note
    assert r.forecast is not None
    forecast = next(f for f in r.findings if f.key == "forecast")
    assert any(r.forecast_note in line for line in forecast.lines)

    assert cli.main(["doctor", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert f"optimizer {optimizer}:" in shown
    assert ("optimizer muon (muon_lr" in shown) == (optimizer == "muon")
    assert cli.main(["doctor", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["optimizer"] == optimizer
