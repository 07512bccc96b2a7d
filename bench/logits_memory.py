"""Peak memory of one training step, plain vs chunked lm_head + cross-entropy (loss_impl).

A GPT-2-124M-shaped model (n_embd 768, 12 heads, vocab 50304, block 1024) takes one step
(forward, backward, AdamW) at each batch size, each case in a fresh process. On a GPU the
figure is torch.cuda.max_memory_allocated during the step; on the CPU it is the process's
peak RSS, and the step's own share (peak RSS minus the RSS before the step: weights,
gradients and optimizer state already there are not counted in it). --layers takes fewer
blocks than GPT-2's 12 on a slow CPU: the logits (batch x 1024 x 50304) do not depend on it.
Memory grows linearly with the batch, so the largest micro-batch within --budget-gb is read
off the line through the measured points.

    python bench/logits_memory.py [--batches 4,12] [--layers 2] [--device cpu] [--budget-gb 12]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import json, resource, sys, time, torch
from gpttui.engine.model import GPT, GPTConfig
impl, batch, layers, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
model = GPT(GPTConfig(n_layer=layers, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)).to(device)
model.loss_impl = impl
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randint(0, 50304, (batch, 1024), device=device)
y = torch.randint(0, 50304, (batch, 1024), device=device)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
for p in model.parameters():  # optimizer state and gradients exist before the measured step
    p.grad = torch.zeros_like(p)
opt.step()
opt.zero_grad(set_to_none=False)
if device.startswith("cuda"):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
before = rss()
t0 = time.perf_counter()
_, loss = model(x, y)
loss.backward()
opt.step()
if device.startswith("cuda"):
    torch.cuda.synchronize()
    peak = step = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step = peak - before
print(json.dumps({"peak": peak, "step": step, "loss": loss.item(), "s": time.perf_counter() - t0}))
"""


def measure(impl: str, batch: int, layers: int, device: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, impl, str(batch), str(layers), device],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def largest_batch(points: list[tuple[int, float]], budget: float) -> int | None:
    """The largest batch whose peak stays within budget, on the line through the points."""
    if len(points) < 2:
        return None
    (b0, m0), (b1, m1) = points[0], points[-1]
    slope = (m1 - m0) / (b1 - b0)
    return int((budget - m0) / slope + b0) if slope > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="4,12")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budget-gb", type=float, default=12.0)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    what = "max_memory_allocated" if args.device.startswith("cuda") else "step's RSS growth (peak RSS in brackets)"
    print(f"124M shape (768 wide, vocab 50304, block 1024), {args.layers} layer(s), {args.device}: {what}")
    results: dict[str, list[tuple[int, float]]] = {"plain": [], "chunked": []}
    losses: dict[int, dict[str, float]] = {}
    for b in batches:
        row = [f"batch {b:>2}:"]
        for impl in ("plain", "chunked"):
            r = measure(impl, b, args.layers, args.device)
            if "error" in r:
                row.append(f"{impl} failed ({r['error']})")
                continue
            results[impl].append((b, r["step"]))
            losses.setdefault(b, {})[impl] = r["loss"]
            row.append(f"{impl} {r['step'] / 2**30:6.2f} GiB [{r['peak'] / 2**30:.2f}] in {r['s']:.0f} s")
        if len(losses.get(b, {})) == 2:
            p, c = results["plain"][-1][1], results["chunked"][-1][1]
            row.append(f"chunked/plain {c / p:.2f} ({1 - c / p:.0%} lower); "
                       f"loss {losses[b]['plain']:.6f} vs {losses[b]['chunked']:.6f}")
        print("  ".join(row), flush=True)
    budget = args.budget_gb * 2**30
    for impl, points in results.items():
        n = largest_batch(points, budget)
        print(f"largest micro-batch within {args.budget_gb:g} GiB of step memory, {impl}: "
              f"{n if n is not None else 'n/a'} (linear in the batch through the measured points)")


if __name__ == "__main__":
    main()
