"""Text from a GPT's weights: prompts to ids, KV-cached decoding, nanoGPT's sampling step,
ids back to text as they arrive. Both the sampler process (sample.py) and the trainer's samples
at checkpoints (checkpoint_samples.py) generate through here.

Speed: the KVCache (model.py) makes each new token one single-position forward. Each step
reads every weight once, so decoding is bound by memory bandwidth (bench/sample_speed.py
measures how close it gets). Loops per token stay short: no tensor is allocated for the cache,
nothing is concatenated, and the one host sync per token is reading the sampled id.

Past block_size nanoGPT recomputes the last block_size tokens for every new token. With
absolute position embeddings every token's position moves each step, so no cache can hold
that window: once the context fills the block, each new token is one forward over the last
block_size tokens, as nanoGPT's (the KV cache serves everything before). The opt-in `keep`
trades that for speed: the full cache is refilled with the last `keep` tokens and decoding
continues cached, one prefill of `keep` tokens per block_size - keep new ones, but a token
then sees between keep and block_size tokens of context and the text is no longer nanoGPT's.

Same seed, same text: `pick` is nanoGPT's sampling step (`draw` is multinomial's own
arithmetic, cheaper), so the same random numbers choose the same tokens. Past block_size the
logits are nanoGPT's own computation; before, only float rounding, cached against recomputed
attention, could flip a near tie.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch

from gpttui.data.tokenizer import GPT2Tokenizer, Tokenizer, gpt2
from gpttui.engine.model import GPT, KVCache

EOT_TEXT = "<|endoftext|>"


class SampleError(ValueError):
    """A sampling request refused, phrased as one line for the user (a setting, the prompt, the
    checkpoint: the input's fault)."""


class SampleFailed(SampleError):
    """A sampling failure said in one line that is not the input's fault (the device)."""


def encode_prompt(tok: Tokenizer, text: str) -> list[int]:
    """A prompt's ids. Empty: start from <|endoftext|> (GPT-2) or a newline (characters)."""
    if not text:
        if tok.eot is not None:
            return [tok.eot]
        text = "\n"
    if isinstance(tok, GPT2Tokenizer):
        return gpt2().encode(text, allowed_special={EOT_TEXT})  # as nanoGPT: the text may name it
    try:
        return tok.encode(text)
    except ValueError as e:
        raise SampleError(f"prompt: {e}") from None


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float = 1.0) -> torch.Tensor:
    """The next token ids (B, 1) from last-position logits (B, V): nanoGPT's sampling step
    (temperature, top-k, multinomial over the whole vocabulary), plus a nucleus filter.
    Temperature 0 is greedy. Modifies `logits`."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature  # half-precision weights on a GPU give half logits
    if top_k is not None:
        v, i = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float("Inf")
    if top_p < 1.0:
        vals, idx = (v, i) if top_k is not None else torch.sort(logits, descending=True)
        probs = torch.softmax(vals, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # keep the fewest tokens holding top_p
        logits.scatter_(1, idx, vals.masked_fill(mass_before >= top_p, -float("Inf")))
    probs = torch.softmax(logits, dim=-1)
    return draw(probs)


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """torch.multinomial(probs, 1): the same choice from the same random numbers, cheaper on the
    CPU (bench/sample_speed.py shows where a token's time goes). multinomial draws Exp(1) noise q
    for every entry and takes argmax(probs / q); its exponential_ takes a scalar log per entry,
    while the same uniforms drawn in one call and a vectorised log1p give the same q. Checked
    against torch.multinomial once per process; on other devices or dtypes, or a torch that
    draws differently, torch.multinomial itself."""
    if probs.device.type != "cpu" or probs.dtype != torch.float32 or not _draw_is_multinomial():
        return torch.multinomial(probs, num_samples=1, generator=generator)
    u = torch.rand(probs.shape, dtype=torch.float64, generator=generator)
    q = (-torch.log1p(-u)).float()
    return (probs / q).argmax(dim=-1, keepdim=True)


@functools.cache
def _draw_is_multinomial() -> bool:
    g = torch.Generator().manual_seed(1234)
    probs = torch.softmax(torch.randn(4, 5003, generator=g), dim=-1)
    probs[:, 3000:] = 0.0  # as after a top-k filter
    start = g.get_state()
    want = torch.multinomial(probs, num_samples=1, generator=g)
    want_state = g.get_state()
    g.set_state(start)
    u = torch.rand(probs.shape, dtype=torch.float64, generator=g)
    got = (probs / (-torch.log1p(-u)).float()).argmax(dim=-1, keepdim=True)
    return torch.equal(want, got) and torch.equal(g.get_state(), want_state)


@torch.inference_mode()
def generate(model: GPT, prompt: list[int], max_new_tokens: int, *, temperature: float = 0.8,
             top_k: int | None = 200, top_p: float = 1.0, vocab_size: int | None = None,
             stop_token: int | None = None, keep: int | None = None,
             cache_dtype: torch.dtype | None = None) -> Iterator[int]:
    """Yield new token ids one by one, decoding with a KVCache while the context fits the block.

    A prompt longer than block_size is cropped to its last block_size tokens, and past
    block_size each token is computed over the last block_size tokens (both as nanoGPT); with
    `keep` the full cache is refilled with the last `keep` tokens instead (module docstring).
    Ids from vocab_size up (the padding of 50257 to 50304) are never drawn. The generator may
    be abandoned at any point (that is how a sample is cancelled).
    """
    if not prompt:
        raise ValueError("generate needs at least one prompt token")
    block = model.config.block_size
    assert keep is None or 1 <= keep < block, f"keep={keep} must be in 1..{block - 1}"
    device = model.lm_head.weight.device
    cache = KVCache(model.config, device=device, dtype=cache_dtype or model.lm_head.weight.dtype)
    seq = list(prompt)
    logits, _ = model(torch.tensor([seq[-block:]], device=device), cache=cache)
    for n in range(max_new_tokens):
        last = logits[:, -1, :]
        if vocab_size is not None and vocab_size < last.size(-1):
            last[:, vocab_size:] = -float("Inf")
        nxt = pick(last, temperature, top_k, top_p)
        token = int(nxt)  # the one host sync per token
        yield token
        if token == stop_token or n == max_new_tokens - 1:
            return
        seq.append(token)
        if cache.pos < block:
            logits, _ = model(nxt.view(1, 1), cache=cache)
        elif keep is None:  # nanoGPT's window: the last block_size tokens, recomputed
            logits, _ = model(torch.tensor([seq[-block:]], device=device))
        else:  # the opt-in: refill the cache with the last `keep` tokens
            cache.reset()
            logits, _ = model(torch.tensor([seq[-keep:]], device=device), cache=cache)


@torch.no_grad()
def generate_uncached(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                      top_k: int | None = None) -> torch.Tensor:
    """nanoGPT's model.generate: the whole context (its last block_size tokens) recomputed for
    every new token, with the same sampling step. The baseline bench/sample_speed.py measures
    and the tests compare the cached path to."""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        idx = torch.cat((idx, pick(logits[:, -1, :], temperature, top_k)), dim=1)
    return idx


class TextStream:
    """Token ids to text as they arrive. A GPT-2 token may hold part of a UTF-8 character, so
    bytes are decoded incrementally; the pieces join to exactly tokenizer.decode(ids)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._bytes = gpt2().decode_single_token_bytes if isinstance(tokenizer, GPT2Tokenizer) else None
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: int) -> str:
        if self._bytes is None:
            return self.tokenizer.decode([token])
        return self._utf8.decode(self._bytes(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True) if self._bytes is not None else ""


def autocast_dtype(ctx: AbstractContextManager[Any] | None) -> torch.dtype | None:
    """Under autocast keys and values come out in its dtype: the cache holds that."""
    return ctx.fast_dtype if isinstance(ctx, torch.amp.autocast) else None
