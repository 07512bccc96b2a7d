"""Time of the forecast the dashboard redraws at each eval: one fit, then the projection's 48
predictions, for nanoGPT's cosine schedules of 5,000, 600,000 and 2^21 iterations. Beside it, the same with the
schedule sampled by np.interp over a grid built per call (how `forecast._sampled` read it before),
as the baseline measured in the same run. Medians of --repeat runs.

    python bench/forecast_speed.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from gpttui.analysis import forecast as F
from gpttui.run import config as C
from gpttui.run.schedule import lr_array


def interp_sampled(values: np.ndarray, iters, stride: int) -> np.ndarray:
    return np.interp(np.asarray(iters, float) / stride, np.arange(len(values)), values)


def once(horizon: int) -> float:
    its = np.linspace(horizon * 0.05, horizon / 2, 20).round().astype(int)
    vals = 3.5 * (its / 1000.0) ** -0.05 + 0.01 * np.sin(its)
    cfg = C.TrainConfig(max_iters=horizon, lr_decay_iters=horizon, warmup_iters=horizon // 50)
    sched = lr_array(cfg, F.schedule_iters(horizon))
    sched = sched / sched.max()
    t = time.perf_counter()
    fit = F.fit(its.tolist(), vals.tolist(), sched, stride=F.schedule_stride(horizon))
    for x in np.linspace(its[-1], horizon, 48).round().astype(int):
        fit.predict(int(x))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(f"{'horizon':>9} {'now (ms)':>9} {'np.interp grid (ms)':>20} {'ratio':>6}")
    for horizon in (5_000, 600_000, 2 ** 21):
        now = statistics.median(once(horizon) for _ in range(args.repeat))
        kept, F._sampled = F._sampled, interp_sampled
        try:
            base = statistics.median(once(horizon) for _ in range(args.repeat))
        finally:
            F._sampled = kept
        print(f"{horizon:>9,} {now * 1000:9.1f} {base * 1000:20.1f} {base / now:6.1f}")


if __name__ == "__main__":
    main()
