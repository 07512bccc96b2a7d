"""Sizing without torch: nanoGPT's parameter count, and which names and comments promise a size."""

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
