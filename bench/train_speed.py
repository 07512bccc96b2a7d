"""Training speed of the engine on a fixed CPU config, against a bare nanoGPT-style loop.

The config is nanoGPT's shakespeare_char CPU recipe (n_layer=4 n_head=4 n_embd=128
block_size=64 batch_size=12, no accumulation, dropout 0) on the bundled tiny Shakespeare,
prepared as `gpttui prepare --tokenizer char` does. Each run is a fresh `python -m gpttui.engine` process; ms/iter is
wall time between step events (so event writing, command polling and logging are included),
iterations 10..N. The reference is the same model and optimizer in nanoGPT train.py's bare
loop, in its own process. Prints the median of the runs for each and their ratio.

    python bench/train_speed.py [--iters 200] [--runs 3] [--threads 0,1,2] [--ui-load 0.1]

--ui-load F runs a process that keeps a core busy F of the time (a dashboard's share) while
measuring: that is how the engine's automatic thread count was chosen (see README).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import char_data

from gpttui.run import config as C
from gpttui.run import directory

RECIPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, gradient_accumulation_steps=1,
              dropout=0.0, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
              device="cpu", compile=False, log_interval=10, eval_iters=1, always_save_checkpoint=False)


def engine_ms_per_iter(data: Path, run: Path, iters: int, threads: int) -> float:
    cfg = C.build({**RECIPE, "data_dir": str(data), "out_dir": str(run), "max_iters": iters,
                   "lr_decay_iters": iters, "eval_interval": 10 * iters, "threads": threads})
    directory.prepare(cfg, run, force=True)
    subprocess.run([sys.executable, "-m", "gpttui.engine", str(run)], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(run / "metrics.jsonl") as f:
        t = [e["t"] for e in map(json.loads, f) if e["type"] == "step" and e["iter"] >= 10]
    return (t[-1] - t[0]) / (len(t) - 1) * 1000


BARE = r"""
import sys, time, numpy as np, torch
from gpttui.engine.model import GPT, GPTConfig
data_dir, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if threads:
    torch.set_num_threads(threads)  # else torch's default, as nanoGPT's train.py runs
torch.manual_seed(1337)
B, T = 12, 64
def get_batch():
    data = np.memmap(f"{data_dir}/train.bin", dtype=np.uint16, mode="r")
    ix = torch.randint(len(data) - T, (B,))
    x = torch.stack([torch.from_numpy((data[i:i+T]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i+1:i+1+T]).astype(np.int64)) for i in ix])
    return x, y
model = GPT(GPTConfig(block_size=T, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0))
# nanoGPT's configure_optimizers: two groups, fused only on CUDA
decay = [p for p in model.parameters() if p.dim() >= 2]
nodecay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
x, y = get_batch()
t0 = None
for it in range(iters):
    if it == 10:
        t0 = time.perf_counter()
    _, loss = model(x, y)
    x, y = get_batch()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss.item()
print((time.perf_counter() - t0) / (iters - 10) * 1000)
"""


def bare_ms_per_iter(data: Path, iters: int, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(data), str(iters), str(threads)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def ui_load(fraction: float) -> None:
    """Busy `fraction` of every 10 ms, idle the rest: a redrawing dashboard's footprint."""
    while True:
        end = time.perf_counter() + 0.01 * fraction
        while time.perf_counter() < end:
            pass
        time.sleep(0.01 * (1 - fraction))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="0", help="comma-separated thread counts; 0 = the engine's automatic "
                    "choice and torch's default for the reference (default)")
    ap.add_argument("--ui-load", type=float, default=0.0, help="fraction of a core kept busy meanwhile")
    args = ap.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    loader = None
    if args.ui_load > 0:
        loader = mp.Process(target=ui_load, args=(args.ui_load,), daemon=True)
        loader.start()
    print(f"shakespeare_char CPU recipe, {args.iters} iters x {args.runs} runs, cores={os.cpu_count()}, "
          f"ui load={args.ui_load:.0%}, load average before={os.getloadavg()[0]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = char_data(Path(tmp) / "data")
            for threads in counts:
                eng, bare = [], []
                for r in range(args.runs):
                    eng.append(engine_ms_per_iter(data, Path(tmp) / f"run{r}", args.iters, threads))
                    bare.append(bare_ms_per_iter(data, args.iters, threads))
                e, b = statistics.median(eng), statistics.median(bare)
                tok = RECIPE["batch_size"] * RECIPE["block_size"]
                print(f"threads={threads or 'auto'}: engine {e:.2f} ms/iter ({tok / e * 1000:,.0f} tokens/s), "
                      f"bare nanoGPT loop {b:.2f} ms/iter; engine/bare = {e / b:.3f}  "
                      f"[engine runs {', '.join(f'{v:.1f}' for v in eng)}; bare {', '.join(f'{v:.1f}' for v in bare)}]",
                      flush=True)
    finally:
        if loader:
            loader.terminate()


if __name__ == "__main__":
    main()
