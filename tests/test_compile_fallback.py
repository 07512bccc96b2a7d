"""torch.compile that fails at its first call (no C compiler, a GPU Triton can't target) leaves
the run on the eager model with a one-line note; a compile that works is kept."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import torch

from gpttui.engine.model import GPT, GPTConfig
from gpttui.engine.trainer import Trainer, compile_choice, eager_if_compile_fails


def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32, dropout=0.0, bias=False))


def warm_up(model: torch.nn.Module) -> None:
    x = torch.randint(0, 32, (2, 8))
    _, loss = model(x, x)
    loss.backward()


def no_compiler(gm, example_inputs):
    """A compile backend failing as inductor does on a machine without a C compiler."""
    raise RuntimeError("Failed to find C compiler. Please specify via CC environment variable.\nmore detail")


def test_compile_is_asked_for_on_cuda_only():
    assert compile_choice(True, "cuda") == (True, "")
    assert compile_choice(False, "cuda") == (False, "")
    assert compile_choice(False, "cpu") == (False, "")
    use, note = compile_choice(True, "cpu")
    assert not use and note.startswith("compile skipped on cpu")


def test_a_compile_failing_at_its_first_call_falls_back_to_eager():
    eager = tiny_model()
    model, note = eager_if_compile_fails(torch.compile(eager, backend=no_compiler), eager, warm_up)
    assert model is eager
    assert note == ("compile failed, training without it: RuntimeError: Failed to find C compiler. "
                    "Please specify via CC environment variable.")
    warm_up(model)  # and the eager model trains
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in eager.parameters())


def test_a_compile_that_works_is_kept():
    eager = tiny_model()
    compiled = torch.compile(eager, backend="eager")
    model, note = eager_if_compile_fails(compiled, eager, warm_up)
    assert model is compiled and note == ""


def test_the_trainers_warm_up_leaves_the_model_as_it_was():
    """Both graphs a run compiles (training and evaluation) are made; nothing is trained."""
    eager = tiny_model()
    before = {k: v.clone() for k, v in eager.state_dict().items()}
    batch = torch.randint(0, 32, (2, 8))
    trainer = SimpleNamespace(batches=SimpleNamespace(get=lambda split: (batch, batch)), ctx=nullcontext())
    Trainer.warm_up(trainer, torch.compile(eager, backend="eager"))
    assert eager.training and all(p.grad is None for p in eager.parameters())
    assert all(torch.equal(before[k], v) for k, v in eager.state_dict().items())
