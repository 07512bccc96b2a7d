"""loss_impl = "chunked": the loss and gradients of the plain lm_head + cross-entropy, without
all logits at once; torch's F.linear_cross_entropy where torch has it, the fallback elsewhere;
in training and eval, eager and compiled."""

from __future__ import annotations

import pytest
import torch
from engine_kit import EngineProc, prepare_run, read_events, step_losses

from gpttui.engine import lm_loss
from gpttui.engine.model import GPT, GPTConfig

IMPLS = [pytest.param(False, id="fallback"),
         pytest.param(True, id="torch", marks=pytest.mark.skipif(not lm_loss.HAS_TORCH_LCE,
                                                                  reason="this torch has no F.linear_cross_entropy"))]


def grads_of(model: GPT, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    _, loss = model(x, y)
    (loss * scale).backward()
    return loss.item(), {n.removeprefix("_orig_mod."): p.grad.clone() for n, p in model.named_parameters()}


def tiny_gpt(vocab: int = 500) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=24, vocab_size=vocab, dropout=0.0))


@pytest.mark.parametrize("use_torch", IMPLS)
def test_chunked_matches_plain_loss_and_every_gradient(use_torch, monkeypatch):
    monkeypatch.setattr(lm_loss, "HAS_TORCH_LCE", use_torch)
    monkeypatch.setattr(lm_loss, "CHUNK_ELEMENTS", 500 * 7)  # the fallback's slices: 7 rows, many of them
    model = tiny_gpt()
    x = torch.randint(0, 500, (5, 24))
    y = torch.randint(0, 500, (5, 24))
    y[1, 3:9] = -1  # nanoGPT's ignore_index: those positions count in neither loss nor gradient
    plain_loss, plain_grads = grads_of(model, x, y, scale=0.25)  # as under gradient accumulation
    model.loss_impl = "chunked"
    loss, grads = grads_of(model, x, y, scale=0.25)
    assert loss == pytest.approx(plain_loss, abs=1e-5)
    for name, g in plain_grads.items():
        torch.testing.assert_close(grads[name], g, atol=1e-5, rtol=1e-5, msg=name)
    with torch.no_grad():  # eval: same value, no graph
        assert model(x, y)[1].item() == pytest.approx(plain_loss, abs=1e-5)


@pytest.mark.parametrize("use_torch", IMPLS)
def test_chunked_under_torch_compile_matches_plain_eager(use_torch, monkeypatch):
    monkeypatch.setattr(lm_loss, "HAS_TORCH_LCE", use_torch)
    monkeypatch.setattr(lm_loss, "CHUNK_ELEMENTS", 500 * 16)
    torch._dynamo.reset()
    eager = tiny_gpt()
    x = torch.randint(0, 500, (4, 24))
    y = torch.randint(0, 500, (4, 24))
    plain_loss, plain_grads = grads_of(eager, x, y)
    eager.loss_impl = "chunked"
    compiled = torch.compile(eager)
    loss, grads = grads_of(compiled, x, y)
    assert loss == pytest.approx(plain_loss, abs=1e-5)
    for name, g in plain_grads.items():
        torch.testing.assert_close(grads[name], g, atol=1e-5, rtol=1e-5, msg=name)


def test_auto_chunks_large_vocabularies_only():
    assert lm_loss.resolve("auto", 65) == "plain"
    assert lm_loss.resolve("auto", 50304) == "chunked"
    assert lm_loss.resolve("plain", 50304) == "plain"
    assert lm_loss.resolve("chunked", 65) == "chunked"


def test_an_engine_run_with_chunked_loss_follows_the_plain_run(char_data, tmp_path):
    runs = {}
    for impl in ("plain", "chunked"):
        runs[impl] = prepare_run(char_data, tmp_path / impl, max_iters=20, eval_interval=10, loss_impl=impl)
        eng = EngineProc(runs[impl])
        assert eng.finish(timeout=240) == 0, eng.stderr
    a, b = step_losses(runs["plain"]), step_losses(runs["chunked"])
    assert sorted(b) == list(range(20))
    assert [b[i] for i in range(20)] == pytest.approx([a[i] for i in range(20)], rel=1e-5)
    evals = {k: [e["val_loss"] for e in read_events(r, "eval")] for k, r in runs.items()}
    assert len(evals["chunked"]) == 3 and evals["chunked"] == pytest.approx(evals["plain"], rel=1e-5)
    assert "without all logits at once" in (runs["chunked"] / "engine.log").read_text()
