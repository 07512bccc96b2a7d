"""Checkpoints: atomic writes, nanoGPT interop both ways, clear refusals."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch
from engine_kit import EngineProc, nanogpt, prepare_run, read_events, step_losses

from gpttui.engine import checkpoint as K
from gpttui.engine.model import GPT, GPTConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained_run(char_data, tmp_path_factory):
    """A run directory the engine trained for 20 iterations."""
    run = prepare_run(char_data, tmp_path_factory.mktemp("trained") / "run", max_iters=20, eval_interval=10, bias=True)
    eng = EngineProc(run)
    assert eng.finish() == 0, eng.stderr
    return run


def small_ckpt(iter_num: int = 3) -> dict:
    model = GPT(GPTConfig(block_size=16, vocab_size=61, n_layer=1, n_head=2, n_embd=16))
    return {"model": model.state_dict(), "optimizer": {}, "model_args": {"n_layer": 1},
            "iter_num": iter_num, "best_val_loss": 2.0, "config": {}}


def test_interrupted_write_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    K.save(path, small_ckpt(3))

    def torn_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(K.torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left on device") as e:
        K.save(path, small_ckpt(9))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)  # the file asked for, not the temporary
    assert K.load(path)["iter_num"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind


def test_our_checkpoint_loads_strictly_into_nanogpts_model(trained_run):
    ng = nanogpt()
    raw = torch.load(trained_run / "ckpt.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("_orig_mod.") for k in raw["model"])
    # what nanoGPT's sample.py does with it
    model = ng.GPT(ng.GPTConfig(**raw["model_args"]))
    model.load_state_dict(raw["model"], strict=True)
    ours = GPT(GPTConfig(**raw["model_args"]))
    ours.load_state_dict(K.load(trained_run / "ckpt.pt")["model"], strict=True)
    idx = torch.randint(0, raw["model_args"]["vocab_size"], (2, 16))
    model.eval(), ours.eval()
    assert torch.allclose(model(idx, idx)[1], ours(idx, idx)[1])
    assert raw["iter_num"] == 20 and isinstance(raw["best_val_loss"], float)
    assert raw["config"]["dataset"] and raw["config"]["n_layer"] == 2
    # nanoGPT's train.py resumes from optimizer state made for its own two parameter groups
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    opt.load_state_dict(raw["optimizer"])
    assert not any(g["fused"] for g in opt.param_groups)  # we fuse on CPU; the file says what nanoGPT would


def test_state_dict_names_are_nanogpts():
    ng = nanogpt()
    for bias in (False, True):
        kw = dict(block_size=16, vocab_size=61, n_layer=2, n_head=2, n_embd=32, bias=bias)
        ours, theirs = GPT(GPTConfig(**kw)).state_dict(), ng.GPT(ng.GPTConfig(**kw)).state_dict()
        assert list(ours) == list(theirs)
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert "transformer.h.1.attn.c_attn.weight" in ours and "lm_head.weight" in ours


def nanogpt_checkpoint(path: Path, vocab: int, iter_num: int) -> dict:
    """A checkpoint as nanoGPT's train.py writes it after torch.compile on a GPU."""
    ng = nanogpt()
    args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False, vocab_size=vocab, dropout=0.0)
    model = ng.GPT(ng.GPTConfig(**args))
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99), "cpu")
    x = torch.randint(0, vocab, (4, 16))
    for _ in range(2):
        model(x, x)[1].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    ckpt = {
        "model": {"_orig_mod." + k: v for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "model_args": args,
        "iter_num": iter_num,
        "best_val_loss": torch.tensor(3.25),
        "config": {"out_dir": "out-shakespeare-char", "dtype": "float16", "device": "cuda",
                   "compile": True, "n_layer": 2, "dataset": "shakespeare_char"},
    }
    torch.save(ckpt, path)
    return ckpt


def test_nanogpt_checkpoint_loads_normalised(tmp_path):
    ckpt = nanogpt_checkpoint(tmp_path / "ckpt.pt", 61, 7)
    got = K.load(tmp_path / "ckpt.pt")
    assert got["best_val_loss"] == 3.25 and got["iter_num"] == 7
    assert list(got["model"]) == [k[len("_orig_mod."):] for k in ckpt["model"]]


def test_nanogpt_checkpoint_resumes_in_the_engine(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=15, eval_interval=5)
    nanogpt_checkpoint(run / "ckpt.pt", 61, 7)
    eng = EngineProc(run, "--init_from=resume", "--dtype=float16")
    assert eng.finish() == 0, eng.stderr
    hello = read_events(run, "hello")[0]
    assert hello["start_iter"] == 7 and hello["dtype"] == "float32"  # CPU: float16 runs as fp32
    assert sorted(step_losses(run)) == list(range(7, 15))
    assert all(math.isfinite(v) for v in step_losses(run).values())
    assert "float16 asked for" in (run / "engine.log").read_text()
    evals = read_events(run, "eval")
    assert [e["iter"] for e in evals] == [10, 15]
    assert evals[0]["best_val_loss"] <= 3.25  # nanoGPT's 0-d tensor became a number
    assert K.load(run / "ckpt.pt")["iter_num"] == 15


def test_shape_mismatch_names_the_field(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=15, n_embd=48)
    nanogpt_checkpoint(run / "ckpt.pt", 61, 7)
    eng = EngineProc(run, "--init_from=resume")
    assert eng.finish() == 2  # refused input at its start (README: 2)
    msg = [e for e in eng.events if e["type"] == "error"][-1]["message"]
    assert "n_embd is 32 in the checkpoint but 48 in the config" in msg
    assert not (run / "metrics.jsonl").exists()  # a refused start is no part of the run's record
    assert "Traceback" not in eng.stderr and f"error: {msg}" in eng.stderr


@pytest.mark.parametrize("content, expect", [
    (b"not a checkpoint at all", "not a readable checkpoint"),
    (None, "not a nanoGPT checkpoint"),
])
def test_foreign_files_are_refused_plainly(tmp_path, content, expect):
    path = tmp_path / "ckpt.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(K.CheckpointError, match=expect):
        K.load(path)


def test_keep_checkpoints_keeps_recent_and_best(tmp_path):
    path = tmp_path / "ckpt.pt"
    for it in (10, 20, 30, 40):
        K.save(path, small_ckpt(it))
        K.keep_recent(path, it, keep=2, best_iter=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "ckpt_10.pt", "ckpt_30.pt", "ckpt_40.pt"]
    assert K.load(tmp_path / "ckpt_30.pt")["iter_num"] == 30
    K.keep_recent(path, 40, keep=1, best_iter=10)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
