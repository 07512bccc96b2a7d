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
