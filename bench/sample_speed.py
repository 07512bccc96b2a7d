"""Generation speed: KV-cached decoding (gpttui) against recomputing the context (nanoGPT).

Batch 1 on the CPU, random-init models (speed does not depend on the weights):
  demo  the demo's character model: n_layer=4 n_head=4 n_embd=128 block_size=64, vocab 65
  bpe   a GPT-2-vocabulary model: n_layer=6 n_head=6 n_embd=384 block_size=1024, vocab 50304
For each thread count and length: the median wall time of --runs runs of gpttui's
`engine.generate.generate` (KV cache) and of nanoGPT's `model.generate` (the whole context
recomputed per token; `engine.generate.generate_uncached`), both with nanoGPT's sampling
(temperature 0.8, top_k 200), their tokens/s and ratio, measured in the same run with the
runs interleaved, and whether they drew the same tokens. Past block_size gpttui computes
nanoGPT's window too (one block-long forward per token), so a length past the block also
times the opt-in half-block refill (`keep`, the sampler's fast_past_block). Cached
decoding reads every weight once per token, so its bound is memory bandwidth / bytes per
token; the bench measures the bandwidth (a 1 GB read and a 1 GB copy) and prints how close
decoding comes within the block. Also: time to the first token, where a token's time goes, and
whether a bf16 copy of lm_head would pay. The load average is printed with every figure: other
processes on the same cores change everything (run it when the machine is quiet).

    python bench/sample_speed.py [--runs 3] [--threads 2,1] [--tokens 500,1000] [--models demo,bpe]
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
from common import median_time

from gpttui.engine.generate import generate, generate_uncached, pick
from gpttui.engine.model import GPT, GPTConfig, KVCache

MODELS = {
    "demo": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65),
    "bpe": dict(n_layer=6, n_head=6, n_embd=384, block_size=1024, vocab_size=50304),
}
REAL_VOCAB = {"demo": None, "bpe": 50257}
SAMPLING = dict(temperature=0.8, top_k=200)


def load() -> str:
    return "load %.2f" % os.getloadavg()[0]


def bandwidth(threads: int, nbytes: float) -> tuple[float, float]:
    """(read GB/s, copy GB/s counting read + write) for buffers of `nbytes`, each read over and
    over as decoding reads the weights (a buffer that fits the last-level cache reads faster)."""
    torch.set_num_threads(threads)
    a = torch.ones(int(nbytes) // 4)
    b = torch.empty_like(a)
    b.copy_(a)
    read = median_time(lambda: a.sum(), 7)
    copy = median_time(lambda: b.copy_(a), 7)
    return a.numel() * 4 / read / 1e9, 2 * a.numel() * 4 / copy / 1e9


def bytes_per_token(model: GPT, context: float) -> float:
    """What one cached decoding step reads: each weight once (the tied embedding once, one row
    of position embeddings) plus the cached keys and values of `context` positions."""
    c = model.config
    weights = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel() + c.n_embd
    return 4 * (weights + 2 * c.n_layer * c.n_embd * context)


def breakdown(model: GPT, vocab: int | None) -> str:
    """ms per token: the one-position forward (at position 500, or the block's end), and sampling."""
    cache = KVCache(model.config)
    pos = min(500, model.config.block_size - 1)
    x = torch.zeros((1, 1), dtype=torch.long)
    with torch.inference_mode():
        def step() -> None:
            cache.pos = pos
            model(x, cache=cache)
        logits = model(x, cache=cache)[0][:, -1, :]

        def sample() -> None:
            last = logits.clone()
            if vocab is not None:
                last[:, vocab:] = -float("Inf")
            int(pick(last, **SAMPLING))
        for f in (step, sample):
            f()
        lm = model.lm_head
        h = torch.randn(1, 1, model.config.n_embd)
        fwd, smp = median_time(step, 50), median_time(sample, 50)
        head = median_time(lambda: lm(h), 50)
    return (f"forward {1e3 * fwd:.2f} ms (of which lm_head {1e3 * head:.2f} ms), "
            f"sampling {1e3 * smp:.2f} ms (one random number per vocabulary entry, as nanoGPT's multinomial)")


def bf16_head(model: GPT) -> str:
    """Would a bf16 copy of lm_head (half the bytes) pay? Time and what it does to the logits."""
    w = model.lm_head.weight.detach()
    wb = w.to(torch.bfloat16)
    h = torch.randn(200, model.config.n_embd)
    t32 = median_time(lambda: torch.nn.functional.linear(h[:1], w), 50)
    t16 = median_time(lambda: torch.nn.functional.linear(h[:1].to(torch.bfloat16), wb), 50)
    full = h @ w.T
    half = (h.to(torch.bfloat16) @ wb.T).float()
    agree = (full.argmax(-1) == half.argmax(-1)).float().mean().item()
    gain = f"{100 * (1 - t16 / t32):.0f}% faster" if t16 < t32 else f"{t16 / t32:.1f}x slower"
    return (f"lm_head fp32 {1e3 * t32:.2f} ms vs bf16 {1e3 * t16:.2f} ms ({gain}); bf16 logits differ by up "
            f"to {(full - half).abs().max().item():.3g}, argmax agrees {100 * agree:.0f}% -> not used: the text "
            f"for a seed would no longer be nanoGPT's, for at best a fraction of the lm_head's share")


def first_token_ms(model: GPT, prompt_len: int, vocab: int | None) -> float:
    prompt = torch.randint(0, vocab or model.config.vocab_size, (prompt_len,)).tolist()

    def first() -> None:
        gen = generate(model, prompt, 1, vocab_size=vocab, **SAMPLING)
        next(gen)
        gen.close()
    first()
    return 1e3 * median_time(first, 5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", default="2,1")
    p.add_argument("--tokens", default="500,1000")
    p.add_argument("--models", default="demo,bpe")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    lengths = [int(n) for n in args.tokens.split(",")]
    cores = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, {cores} cores, {load()} (1-minute average; 0 = idle), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    for th in threads:
        read, copy = bandwidth(th, 2**30)
        print(f"memory bandwidth, 1 GB buffers, {th} thread(s): read {read:.1f} GB/s, copy {copy:.1f} GB/s "
              f"(read + write), {load()}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**MODELS[name])).eval()
        vocab = REAL_VOCAB[name]
        weights = bytes_per_token(model, 0)
        print(f"\n== {name}: {MODELS[name]}, {model.get_num_params() / 1e6:.2f}M parameters, "
              f"{weights / 1e6:.1f} MB read per decoded token (+ the cached keys and values)")
        for th in threads:
            read_bw = bandwidth(th, weights)[0]
            torch.set_num_threads(th)
            print(f"-- {th} thread(s); reading {weights / 1e6:.1f} MB over and over: {read_bw:.1f} GB/s, {load()}")
            for n in lengths:
                x = torch.zeros((1, 1), dtype=torch.long)
                cached: list[int] = []
                fast: list[int] = []
                ref: list[int] = []  # the timed runs keep their tokens: none is run again to compare
                block = model.config.block_size
                past = n > block  # the 1-token prompt and the new tokens outgrow the block

                def run_cached(into: list[int] = cached, keep: int | None = None) -> None:
                    torch.manual_seed(1)
                    into[:] = generate(model, [0], n, vocab_size=vocab, keep=keep, **SAMPLING)

                def run_recomputed() -> None:
                    torch.manual_seed(1)
                    ref[:] = generate_uncached(model, x, n, **SAMPLING)[0, 1:].tolist()

                run_cached()  # warm-up
                before = load()
                times_c, times_r, times_f = [], [], []
                for _ in range(args.runs):  # interleaved, so a change of load hits both alike
                    times_c.append(median_time(run_cached, 1))
                    times_r.append(median_time(run_recomputed, 1))
                    if past:
                        times_f.append(median_time(lambda: run_cached(fast, block // 2), 1))
                tc, tr = statistics.median(times_c), statistics.median(times_r)
                diff = next((i for i, (a, b) in enumerate(zip(ref, cached)) if a != b), None)
                same = ("same tokens" if diff is None else
                        f"same tokens up to #{diff}, where float rounding (cached vs recomputed) flipped a near tie")
                if past:
                    tf = statistics.median(times_f)
                    bound = (f"past block_size {block}: nanoGPT's window, one {block}-token forward per token; "
                             f"fast_past_block {n / tf:.1f} tok/s")
                else:
                    limit = read_bw * 1e9 / bytes_per_token(model, n / 2)
                    bound = f"{100 * n / tc / limit:3.0f}% of the {limit:.0f} tok/s read-bandwidth bound"
                print(f"{n:5d} tokens: cached {n / tc:7.1f} tok/s ({bound}), recomputed {n / tr:6.1f} tok/s, "
                      f"ratio {tr / tc:5.1f}x  [{before}, then {load()}; {same}]")
            print(f"   first token after {first_token_ms(model, 1, vocab):.1f} ms (1-token prompt), "
                  f"{first_token_ms(model, model.config.block_size, vocab):.1f} ms "
                  f"({model.config.block_size}-token prompt)")
            print(f"   per token: {breakdown(model, vocab)}")
        if name == "bpe":
            torch.set_num_threads(threads[0])
            print(f"   {bf16_head(model)}")


if __name__ == "__main__":
    main()
