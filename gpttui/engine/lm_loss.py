"""The language-model loss: lm_head then cross-entropy, with or without all logits at once.

"plain" is nanoGPT's: the (tokens x vocab) logits and, in backward, their gradient, are whole
tensors; with GPT-2's vocabulary they dominate a step's activation memory. "chunked" never
holds them at once: torch's own F.linear_cross_entropy with chunking options where the
installed torch has it, else ChunkedLinearCrossEntropy below, which computes the logits a
slice of rows at a time in forward (keeping only each row's log-sum-exp) and recomputes each
slice in backward. "auto" is chunked from AUTO_MIN_VOCAB up (a character vocabulary's logits
are small, and the plain path is faster there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

IMPLS = ("plain", "chunked", "auto")
AUTO_MIN_VOCAB = 8192
CHUNK_ELEMENTS = 1 << 23  # logits per slice of the fallback (32 MiB in float32)
IGNORE = -1  # nanoGPT's ignore_index

HAS_TORCH_LCE = hasattr(F, "linear_cross_entropy") and hasattr(torch.nn, "LinearCrossEntropyOptions")


def resolve(impl: str, vocab_size: int) -> str:
    """'plain' or 'chunked' for a config's loss_impl and the model's vocabulary."""
    if impl == "auto":
        return "chunked" if vocab_size >= AUTO_MIN_VOCAB else "plain"
    return impl


def describe(impl: str) -> str:
    """One line for the log: which implementation computes the loss."""
    if impl == "plain":
        return "loss: plain lm_head + cross-entropy (all logits at once)"
    how = "torch's F.linear_cross_entropy (chunked)" if HAS_TORCH_LCE else "gpttui's chunked fallback"
    return f"loss: lm_head + cross-entropy without all logits at once, by {how}"


def plain(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nanoGPT's: (logits, mean loss)."""
    logits = F.linear(x, weight)
    return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=IGNORE)


def chunked(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean loss of plain() without its logits. x: (..., n_embd), weight: (vocab, n_embd)."""
    x2, t = x.reshape(-1, x.size(-1)), targets.reshape(-1)
    if HAS_TORCH_LCE:
        return F.linear_cross_entropy(x2, weight, t, ignore_index=IGNORE,
                                      options=torch.nn.LinearCrossEntropyOptions())
    dev = x2.device.type
    if torch.is_autocast_enabled(dev):  # a custom Function runs outside autocast: cast as F.linear would
        dtype = torch.get_autocast_dtype(dev)
        x2, weight = x2.to(dtype), weight.to(dtype)
    with torch.autocast(dev, enabled=False):
        return ChunkedLinearCrossEntropy.apply(x2, weight, t, max(1, CHUNK_ELEMENTS // weight.size(0)))


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (x @ weight.T) against targets, `rows` rows of logits at a time.
    Softmax statistics are in float32 whatever the input dtype, as F.cross_entropy under autocast."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
        valid = targets != IGNORE
        safe = targets.clamp(min=0)
        lse = torch.empty(x.size(0), device=x.device, dtype=torch.float32)
        total = torch.zeros((), device=x.device, dtype=torch.float32)
        for s in range(0, x.size(0), rows):
            logits = (x[s:s + rows] @ weight.T).float()
            lse[s:s + rows] = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe[s:s + rows, None]).squeeze(1)
            total += ((lse[s:s + rows] - picked) * valid[s:s + rows]).sum()
        count = valid.sum()
        ctx.save_for_backward(x, weight, targets, lse, count)
        ctx.rows = rows
        return total / count

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, targets, lse, count = ctx.saved_tensors
        rows = ctx.rows
        scale = grad.float() / count
        valid = targets != IGNORE
        safe = targets.clamp(min=0)
        gx = torch.empty_like(x)
        gw = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32)
        for s in range(0, x.size(0), rows):
            xs = x[s:s + rows]
            p = torch.exp((xs @ weight.T).float() - lse[s:s + rows, None])  # softmax, recomputed
            p.scatter_add_(1, safe[s:s + rows, None], -torch.ones_like(p[:, :1]))
            p *= (valid[s:s + rows, None] * scale)
            gx[s:s + rows] = (p.to(x.dtype) @ weight).to(x.dtype)
            gw.addmm_(p.T, xs.float())
        return gx, gw.to(weight.dtype), None, None
