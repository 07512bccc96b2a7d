"""What checking every field costs when a long run's metrics.jsonl is read (open, doctor,
export, attach all read it first).

Writes a metrics.jsonl of `--steps` step events (an eval and a checkpoint every 250), then
times, `--runs` times each: `json.loads` of every line (what the reader did before fields were
checked: the baseline), `EventReader` (protocol.parse_event on every line) and
`RunHistory.from_metrics` (the reader plus building the history). Prints the median seconds,
microseconds per line and the ratio to the baseline.

    python bench/event_read.py [--steps 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import median_time

from gpttui.run import protocol
from gpttui.run.history import RunHistory
from gpttui.run.metrics import EventReader, MetricsWriter


def write_run(path: Path, steps: int) -> int:
    lines = 0
    with MetricsWriter(path) as w:
        w.write(protocol.event("hello", 0, version=1, config={"max_iters": steps}, params={"total": 10},
                               device="cpu", device_name="a CPU", dtype="float32", peak_flops=1e12,
                               tokens_per_iter=64, start_iter=0, max_iters=steps, world_size=1))
        lines += 1
        for i in range(steps):
            w.write(protocol.event("step", i, loss=3.0 - i * 1e-6, lr=1e-3, dt_ms=10.0, tokens_per_s=6400.0,
                                   mfu=0.3, grad_norm=1.0, tokens=(i + 1) * 64))
            lines += 1
            if i % 250 == 0:
                w.write(protocol.event("eval", i, train_loss=2.0, val_loss=2.1, best_val_loss=2.1))
                w.write(protocol.event("checkpoint", i, path="/r/ckpt.pt", val_loss=2.1))
                lines += 2
    return lines


def plain(path: Path) -> None:
    with open(path, "rb") as f:
        for raw in f:
            json.loads(raw)


def checked(path: Path) -> None:
    for _ in EventReader(path):
        pass


def history(path: Path) -> None:
    RunHistory.from_metrics(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "metrics.jsonl"
        lines = write_run(path, args.steps)
        print(f"{lines:,} lines, {path.stat().st_size / 1e6:.1f} MB; median of {args.runs} runs")
        base = median_time(lambda: plain(path), args.runs)
        for name, fn in (("json.loads per line (baseline)", plain), ("EventReader (checked)", checked),
                         ("RunHistory.from_metrics", history)):
            s = base if fn is plain else median_time(lambda: fn(path), args.runs)
            print(f"{name:32s} {s:7.3f} s  {s / lines * 1e6:6.2f} us/line  x{s / base:.2f}")


if __name__ == "__main__":
    main()
