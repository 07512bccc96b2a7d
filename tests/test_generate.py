"""Generation (engine/generate.py): nanoGPT's tokens for its seed past block_size, the KV cache
against recomputation, nanoGPT's sampling step and its cheaper draw, filters, stop tokens, text
streamed as it decodes."""

from __future__ import annotations

import pytest
import torch
from engine_kit import BPE_ARGS, CHAR_ARGS, nanogpt

from gpttui.data.tokenizer import GPT2_EOT, GPT2Tokenizer, gpt2
from gpttui.engine.generate import TextStream, _draw_is_multinomial, draw, generate, generate_uncached
from gpttui.engine.model import GPT, GPTConfig

torch.set_num_threads(1)


# ---------------------------------------------------------------- the sampling step

def test_draw_is_torch_multinomial_to_the_random_number():
    """The cheaper draw picks what torch.multinomial picks and leaves the generator where it does
    (an older torch that draws differently, e.g. 2.6, gets torch.multinomial itself)."""
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 13):  # the torch the README installs
        assert _draw_is_multinomial()
    g = torch.Generator().manual_seed(0)
    for case in range(40):
        logits = torch.randn(1, 50304, generator=g) * (0.1 + case / 4)
        if case % 2:
            logits[logits < torch.topk(logits, 200).values[:, [-1]]] = -float("Inf")
        probs = torch.softmax(logits, dim=-1)
        torch.manual_seed(case)
        want, want_state = torch.multinomial(probs, 1), torch.get_rng_state()
        torch.manual_seed(case)
        assert torch.equal(draw(probs), want) and torch.equal(torch.get_rng_state(), want_state)


# ---------------------------------------------------------------- nanoGPT's tokens past block_size

@pytest.mark.parametrize("prompt_len", [3, 40])  # 40 > block_size: cropped as nanoGPT does
def test_nanogpts_tokens_for_its_seed_past_block_size(prompt_len):
    """nanoGPT's model.generate (its own code) recomputes the last block_size tokens for every new
    token; the same seed draws the same tokens well past block_size, for each sampling setting."""
    ng = nanogpt()
    torch.manual_seed(0)
    args = {**CHAR_ARGS, "block_size": 16}
    ref = ng.GPT(ng.GPTConfig(**args)).eval()
    model = GPT(GPTConfig(**args)).eval()
    model.load_state_dict(ref.state_dict())
    prompt = torch.randint(0, 65, (prompt_len,)).tolist()
    n = 60  # 44 and more tokens past the 16-token block
    for seed, temperature, top_k in ((1, 0.8, 200), (2, 1.0, None), (3, 0.5, 5), (4, 1.0, 1)):
        torch.manual_seed(seed)
        with torch.no_grad():
            want = ref.generate(torch.tensor([prompt]), n, temperature=temperature, top_k=top_k)
        torch.manual_seed(seed)
        got = list(generate(model, prompt, n, temperature=temperature, top_k=top_k))
        assert got == want[0, prompt_len:].tolist(), (seed, temperature, top_k)


# ---------------------------------------------------------------- the cache is exact

def _greedy_reference(model: GPT, prompt: list[int], n: int, keep: int) -> list[int]:
    """Recompute everything for each token, over the window the cached path keeps."""
    block = model.config.block_size
    seq, start = list(prompt), max(0, len(prompt) - block)
    out = []
    with torch.no_grad():
        for _ in range(n):
            if len(seq) - start > block:
                start = len(seq) - keep
            logits, _ = model(torch.tensor([seq[start:]]))
            out.append(int(logits[0, -1].argmax()))
            seq.append(out[-1])
    return out


@pytest.mark.parametrize("prompt_len", [3, 40])
def test_cached_greedy_equals_recomputed_over_the_window_kept(prompt_len):
    """In float64 (rounding far below the gaps between logits): nanoGPT's window by default; keep=N
    (the sampler's fast_past_block) refills the last N tokens once the cache is full."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**CHAR_ARGS, "block_size": 16})).double().eval()
    prompt = torch.randint(0, 65, (prompt_len,)).tolist()
    n = 60  # several refills of the 16-token window
    assert list(generate(model, prompt, n, temperature=0, keep=8)) == _greedy_reference(model, prompt, n, keep=8)
    nano = generate_uncached(model, torch.tensor([prompt]), n, top_k=1)[0, prompt_len:].tolist()
    assert list(generate(model, prompt, n, temperature=0)) == nano


def test_top_p_tiny_is_greedy_and_padding_ids_are_never_drawn():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**BPE_ARGS)).eval()
    greedy = list(generate(model, [GPT2_EOT], 30, temperature=0, vocab_size=50257))
    torch.manual_seed(1)
    assert list(generate(model, [GPT2_EOT], 30, temperature=1.0, top_k=None, top_p=1e-6, vocab_size=50257)) == greedy
    with torch.no_grad():  # make a padding id the most likely token: it must still not appear
        model.lm_head.weight[50300] = model.lm_head.weight[greedy[0]] * 50
    drawn = list(generate(model, [GPT2_EOT], 30, temperature=1.0, top_k=None, vocab_size=50257))
    assert max(drawn) < 50257 and max(generate(model, [GPT2_EOT], 5, temperature=0)) == 50300


def test_stop_token_ends_generation():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**CHAR_ARGS)).eval()
    torch.manual_seed(1)
    drawn = list(generate(model, [1, 2, 3], 20, temperature=1.0))
    stop = drawn[12]
    first = drawn.index(stop)
    torch.manual_seed(1)
    assert list(generate(model, [1, 2, 3], 20, temperature=1.0, stop_token=stop)) == drawn[:first + 1]
    assert first > 0


# ---------------------------------------------------------------- text

def test_text_stream_joins_utf8_split_across_tokens():
    text = "naïve café — 日本語 🙂"
    ids = gpt2().encode(text)
    stream = TextStream(GPT2Tokenizer())
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text and len(ids) > len(text.split())
