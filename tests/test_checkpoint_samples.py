"""The trainer's samples at checkpoints (engine/checkpoint_samples.py): samples.jsonl, and a
training run left exactly as it would be without them."""

from __future__ import annotations

import json

import torch
from engine_kit import CHAR_ARGS, EngineProc, prepare_run, step_losses

from gpttui.data.metapkl import write_meta_pkl
from gpttui.engine.checkpoint_samples import checkpoint_sample
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import config as C

torch.set_num_threads(1)


def test_checkpoint_sample_leaves_rng_threads_and_train_mode_as_they_were(tmp_path, shakespeare_chars):
    write_meta_pkl(tmp_path / "meta.pkl", shakespeare_chars)
    cfg = C.replace(C.DEFAULTS, out_dir=str(tmp_path), data_dir=str(tmp_path), sample_prompt="KING:",
                    sample_tokens=25)
    model = GPT(GPTConfig(**CHAR_ARGS)).train()
    torch.set_num_threads(2)
    rng = torch.get_rng_state()
    try:
        row = checkpoint_sample(model, cfg, 30, 2.5, tmp_path / "ckpt.pt")
        assert torch.get_num_threads() == 2 and model.training and torch.equal(torch.get_rng_state(), rng)
    finally:
        torch.set_num_threads(1)
    assert row["iter"] == 30 and row["prompt"] == "KING:" and len(row["text"]) == 25
    assert json.loads((tmp_path / "samples.jsonl").read_text()) == row


def test_samples_jsonl_written_at_checkpoints_by_a_real_training_run(char_data, tmp_path):
    runs = {}
    for sampling in (True, False):
        run = prepare_run(char_data, tmp_path / f"run{sampling}", max_iters=20, eval_interval=10,
                          sample_on_checkpoint=sampling, sample_prompt="ROMEO:", sample_tokens=30)
        eng = EngineProc(run)
        assert eng.finish() == 0, eng.stderr
        runs[sampling] = run
    rows = [json.loads(line) for line in (runs[True] / "samples.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [10, 20]
    for r in rows:
        assert r["prompt"] == "ROMEO:" and len(r["text"]) == 30 and r["ckpt"].endswith("ckpt.pt")
        assert isinstance(r["val_loss"], float) and r["t"] > 0
    assert rows[0]["text"] != rows[1]["text"]  # same seed, other weights
    assert not (runs[False] / "samples.jsonl").exists()
    # sampling at checkpoints leaves training exactly as it was
    assert step_losses(runs[True]) == step_losses(runs[False])
