"""What the vocabulary check costs when data is opened: a chunked max over a large uint16 file
(first open), and the cached answer (every later open of the unchanged file), against reading
the file whole with numpy as a baseline measured in the same run.

    python bench/token_check.py [MB]      # default 200 MB of uint16 token ids
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gpttui.engine import batches

RUNS = 5


def timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        n = mb * (1 << 20) // 2
        ids = np.random.default_rng(0).integers(0, 50257, n).astype(np.uint16)
        ids.tofile(path)
        del ids
        baseline, scan, cached = [], [], []
        for i in range(RUNS):
            os.environ["XDG_CACHE_HOME"] = f"{tmp}/cache{i}"  # empty cache: the scan runs
            baseline.append(timed(lambda: int(np.fromfile(path, dtype=np.uint16).max())))
            scan.append(timed(lambda: batches.max_token(path)))
            cached.append(timed(lambda: batches.max_token(path)))
        b, s, c = (statistics.median(x) for x in (baseline, scan, cached))
        print(f"{mb} MB uint16 ({n:,} tokens), median of {RUNS}, file in the page cache:")
        print(f"  np.fromfile(...).max() (baseline) {b * 1000:8.1f} ms")
        print(f"  first open: chunked scan          {s * 1000:8.1f} ms   {s / b:.2f}x baseline, "
              f"{mb / s:,.0f} MB/s")
        print(f"  later opens: cached               {c * 1000:8.3f} ms   {c / b:.4f}x baseline")


if __name__ == "__main__":
    main()
