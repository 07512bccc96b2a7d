"""Sizing (pure arithmetic, no torch in the module): nanoGPT's parameter count, training memory, and which
names and comments promise a size; the real model and optimizer check the counts."""

import pytest

from gpttui.run import config as C
from gpttui.run import sizing

GPT2_124M = C.TrainConfig(vocab_size=50304)


def test_gpt2_small_is_nanogpts_124m():
    d = sizing.derive(GPT2_124M)
    assert d.params_nanogpt == 123_587_328                   # "number of parameters: 123.59M"
    assert d.params_total == d.params_nanogpt + 1024 * 768   # plus the position embeddings
    assert d.tokens_per_iter == 40 * 12 * 1024
    assert d.memory_bytes["total"] == sum(v for k, v in d.memory_bytes.items() if k != "total")


def test_names_and_model_comments_promise_sizes_token_comments_do_not():
    cfg = C.replace(GPT2_124M, out_dir="out-gpt2-medium", wandb_run_name="run")
    text = "n_layer = 12  # ~125M parameters\nmax_iters = 6000  # ~3B tokens seen\n"
    assert sizing.promised_sizes(cfg, text, "train-40M.py") == [
        ("out_dir", 350e6), ("config file name", 40e6), ("comment on line 1", 125e6)]
    warnings = sizing.size_mismatches(cfg, text, "train-40M.py")
    assert warnings == ["out_dir promises ~350M parameters, but this config builds 123.59M",
                        "config file name promises ~40M parameters, but this config builds 123.59M"]


@pytest.mark.parametrize("dtype,device,per_activation", [("bfloat16", "cuda", 2), ("float32", "cuda", 4),
                                                         ("auto", "cpu", 4)])
def test_activations_are_counted_at_the_width_they_are_stored(dtype, device, per_activation):
    assert sizing.bytes_per_activation(C.replace(GPT2_124M, dtype=dtype, device=device)) == per_activation


@pytest.mark.parametrize("optimizer,bias", [("adamw", False), ("muon", False), ("muon", True)])
def test_optimizer_memory_is_the_state_the_real_optimizer_keeps(optimizer, bias):
    """After a step, the bytes of torch's optimizer state per weight: two AdamW moments, or one
    Muon momentum buffer for the block matrices (the step counters are not per-weight)."""
    import torch

    from gpttui.engine import optim
    from gpttui.engine.model import GPT, GPTConfig

    cfg = C.replace(GPT2_124M, n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=61, bias=bias,
                    optimizer=optimizer, device="cpu")
    model = GPT(GPTConfig(block_size=16, vocab_size=61, n_layer=2, n_head=2, n_embd=32, bias=bias))
    opt = optim.build(model, cfg, "cpu")
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    kept = sum(t.numel() * t.element_size() for state in opt.state.values() for t in state.values()
               if isinstance(t, torch.Tensor) and t.numel() > 1)
    params = sum(p.numel() for p in model.parameters())
    assert params == sizing.derive(cfg).params_total
    assert sizing.derive(cfg).memory_bytes["optimizer"] == sizing.optimizer_bytes(cfg, params) == kept
    if optimizer == "muon":
        assert kept < 8 * params


def test_the_config_editor_names_the_optimizer_whose_memory_it_shows():
    from gpttui.analysis.config_edit import figures
    from gpttui.run.units import human_bytes

    muon = C.replace(GPT2_124M, optimizer="muon")
    shown = figures(muon, GPT2_124M).plain
    assert f"Muon+AdamW {human_bytes(sizing.derive(muon).memory_bytes['optimizer'])}" in shown
    assert f" AdamW {human_bytes(sizing.derive(GPT2_124M).memory_bytes['optimizer'])}" in figures(GPT2_124M, GPT2_124M).plain


def _data_with_meta(tmp_path, meta: bytes, name: str = "meta.pkl"):
    import numpy as np

    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    rng.integers(0, 65, 4000, dtype=np.uint16).tofile(d / "train.bin")
    rng.integers(0, 65, 1000, dtype=np.uint16).tofile(d / "val.bin")
    (d / name).write_bytes(meta)
    return d


TINY = ["--device=cpu", "--compile=False", "--max_iters=1", "--n_layer=1", "--n_head=1", "--n_embd=16",
        "--block_size=16", "--batch_size=2", "--gradient_accumulation_steps=1", "--eval_iters=1"]


@pytest.mark.parametrize("command", ["train", "config"])
def test_a_meta_pkl_that_cannot_be_read_is_refused_before_training(tmp_path, capsys, monkeypatch, command):
    """Training swallowed it and built the model for GPT-2's vocabulary (loss from 10.8), while
    `gpttui sample` refused the same file; nanoGPT's train.py fails on it too."""
    import random

    from gpttui.cli import main

    d = _data_with_meta(tmp_path, b"\x80\x04\xbb" + random.Random(0).randbytes(297))
    monkeypatch.chdir(tmp_path)
    assert main([command, f"--data_dir={d}", "--out_dir=out", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {d / 'meta.pkl'}: not a nanoGPT meta.pkl: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text,why", [
    ('{"tokenizer": "char", "vocab_size": "65"', "cannot read"),
    ('{"tokenizer": "char", "vocab_size": "65"}', "vocab_size is '65', not a positive integer"),
    ("[65]", "expected a JSON object"),
])
def test_a_meta_json_that_cannot_be_read_is_refused_naming_it(tmp_path, text, why):
    d = _data_with_meta(tmp_path, text.encode(), "meta.json")
    with pytest.raises(C.ConfigError, match=f"^{d / 'meta.json'}: {why}"):
        sizing.data_vocab_size(d)


def test_damaged_meta_pkl_bytes_are_one_value_error_whatever_the_unpickler_trips_on(tmp_path):
    """Random and bit-flipped pickles raise a dozen kinds of error inside pickle; each is said the same way."""
    import pickle
    import random

    from gpttui.data.metapkl import read_meta_pkl

    rng = random.Random(1)
    good = pickle.dumps({"vocab_size": 65, "itos": {0: "a"}, "stoi": {"a": 0}})
    p = tmp_path / "meta.pkl"
    for i in range(3000):
        data = bytearray(good if i % 2 else rng.randbytes(rng.randint(1, 300)))
        for _ in range(rng.randint(1, 4) if i % 2 else 0):
            data[rng.randrange(len(data))] = rng.randrange(256)
        p.write_bytes(bytes(data))
        try:
            meta = read_meta_pkl(p)
        except ValueError as e:
            assert str(e).startswith(f"{p}: not a nanoGPT meta.pkl") and "\n" not in str(e)
        else:
            assert type(meta["vocab_size"]) is int and meta["vocab_size"] > 0


def test_one_compute_optimal_judgment_for_the_doctor_and_the_config_editor():
    """11.6 tokens per parameter is 58% of compute-optimal: the doctor called it 'about compute-optimal'
    where 9.8 was 'under-trained, 49%' and the config editor said 'fewer'. Within a factor of 1.5 of
    20, either way, is about it."""
    assert [sizing.compute_optimal_side(x) for x in (9.8, 11.6, 13.0, 13.4, 20.0, 30.0, 30.1)] == \
        ["under", "under", "under", "about", "about", "about", "over"]
