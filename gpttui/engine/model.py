"""nanoGPT's GPT language model (after Andrej Karpathy's nanoGPT model.py, MIT licence).

State-dict names are nanoGPT's exactly (transformer.wte, transformer.h.N.attn.c_attn, ...,
lm_head.weight), so checkpoints move both ways. Differences from nanoGPT: nothing is printed
(the engine's stdout carries events; callers log what they want), attention always uses
PyTorch's scaled_dot_product_attention, and MFU is measured against a peak FLOP/s the caller
passes (the real device's), not a fixed A100.

Attention lives in CausalSelfAttention.forward alone; for sampling it takes a KVCache, a
preallocated buffer of every layer's keys and values, so decoding feeds one token per step
instead of recomputing the whole context (the training path passes no cache and is unchanged).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
from torch.nn import functional as F

from gpttui.engine import lm_loss as L


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257, padded up to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = False  # True: biases in Linears and LayerNorms, like GPT-2


# The checkpoint's model_args: the GPTConfig fields nanoGPT stores (dropout is a run choice).
MODEL_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


class KVCache:
    """Keys and values of the positions decoded so far, for every layer, preallocated.

    Buffers hold block_size positions, so no step allocates or concatenates; `pos` counts the
    filled ones. A forward with T tokens writes positions pos..pos+T-1 and attends to 0..pos+T-1;
    several tokens at once (a prompt) only start from an empty cache. When it is full the
    caller decides what to keep and refills it (`reset`, then a forward of the kept tokens).
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32):
        hs = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, hs)
        self.k = torch.empty(shape, device=device, dtype=dtype)  # only filled positions are read
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.size = config.block_size
        self.pos = 0

    def reset(self) -> None:
        self.pos = 0


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is None:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        else:
            y = self._attend_cached(q, k, v, cache, layer)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))

    @staticmethod
    def _attend_cached(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache,
                       layer: int) -> torch.Tensor:
        """Store this step's keys and values at cache.pos, attend over everything cached."""
        start, T = cache.pos, q.size(2)
        end = start + T
        assert end <= cache.size, "KV cache full: reset it and refill with the tokens to keep"
        assert T == 1 or start == 0, "several tokens at once only into an empty cache"
        ks, vs = cache.k[layer], cache.v[layer]
        ks[:, :, start:end] = k
        vs[:, :, start:end] = v
        # one query sees every cached position; a prompt (start == 0) is causal as in training
        return F.scaled_dot_product_attention(q, ks[:, :, :end], vs[:, :, :end], is_causal=T > 1)


class MLP(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.loss_impl = "plain"  # or "chunked" (engine/lm_loss.py): a run choice, not in model_args
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # scaled init of the residual projections, per the GPT-2 paper
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters; by default without position embeddings (token embeddings count, being
        shared with lm_head), as nanoGPT prints them."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(logits, loss). Without targets only the last position's logits are computed; with
        loss_impl "chunked" the loss comes without any logits (None).

        With a cache, idx holds the tokens after the cache.pos already cached (the positions
        continue from there) and the cache advances past them.
        """
        b, t = idx.size()
        start = 0 if cache is None else cache.pos
        assert start + t <= self.config.block_size, \
            f"Cannot forward sequence of length {start + t}, block size is only {self.config.block_size}"
        pos = torch.arange(start, start + t, dtype=torch.long, device=idx.device)
        tok_emb = self.transformer.wte(idx)  # (b, t, n_embd)
        pos_emb = self.transformer.wpe(pos)  # (t, n_embd)
        x = self.transformer.drop(tok_emb + pos_emb)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.pos += t
        x = self.transformer.ln_f(x)
        if targets is not None and self.loss_impl == "chunked":
            return None, L.chunked(x, self.lm_head.weight, targets)
        if targets is not None:
            return L.plain(x, self.lm_head.weight, targets)
        return self.lm_head(x[:, [-1], :]), None  # list [-1] keeps the time dim

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple[float, float], device_type: str,
                             log: Callable[[str], None] | None = None) -> torch.optim.AdamW:
        """AdamW with nanoGPT's groups: 2-D tensors (matmuls, embeddings) decay; biases and
        LayerNorm gains don't. Fused AdamW where torch has the kernel."""
        params = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay_params = [p for p in params.values() if p.dim() >= 2]
        nodecay_params = [p for p in params.values() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        # nanoGPT fuses on CUDA; torch >= 2.4 has a fused CPU kernel too (2.8x faster step measured
        # on nanoGPT's CPU recipe: 0.65 vs 1.83 ms)
        use_fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in ("cuda", "cpu")
        optimizer = None
        if use_fused:
            try:
                optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, fused=True)
            except RuntimeError:  # an older torch: fused kernels for CUDA only
                use_fused = False
        if optimizer is None:
            optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas)
        if log:
            log(f"num decayed parameter tensors: {len(decay_params)}, with "
                f"{sum(p.numel() for p in decay_params):,} parameters")
            log(f"num non-decayed parameter tensors: {len(nodecay_params)}, with "
                f"{sum(p.numel() for p in nodecay_params):,} parameters")
            log(f"using fused AdamW: {use_fused}")
        return optimizer

    def flops_per_token(self) -> int:
        """Training FLOPs per token, forward and backward (PaLM appendix B, as nanoGPT)."""
        cfg = self.config
        return 6 * self.get_num_params() + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    def estimate_mfu(self, fwdbwd_per_iter: int, dt: float, peak_flops: float) -> float:
        """Model FLOPs utilization as a fraction of `peak_flops` (the device's real peak)."""
        flops_per_iter = self.flops_per_token() * self.config.block_size * fwdbwd_per_iter
        return flops_per_iter / dt / peak_flops
