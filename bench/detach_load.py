"""Does a frozen UI slow the engine or grow its memory? A tiny engine emitting ~1000 events/s.

For each case the engine (n_layer=1, n_embd=16, block_size=8: a step is ~1 ms, so it writes a
step event and a log line per step) trains for `--seconds`; the UI side is
  reading   a parent draining stdout/stderr as the dashboard does (the baseline);
  frozen    a parent that reads nothing for the whole window (pipes full after a moment);
  socket    the baseline plus a control-socket client that never reads;
  both      frozen pipes and a frozen socket client.
Printed per case: the engine's iterations/s over the window (from metrics.jsonl, so nothing the
UI did can hide a slowdown) and its ratio to the baseline, steps recorded vs steps done,
and the engine's RSS growth over the window. Medians over --repeat runs.

    python bench/detach_load.py [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import char_data

from gpttui.run import config as C
from gpttui.run import directory, engine_state

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=1, gradient_accumulation_steps=1,
            max_iters=10**9, lr_decay_iters=10**9, warmup_iters=10, eval_interval=10**8, eval_iters=1,
            log_interval=1, device="cpu", dtype="float32", compile=False, threads=1)


def make_run(root: Path) -> Path:
    data = char_data(root / "data", n_chars=20_000)
    rd = root / "run"
    cfg = C.replace(C.TrainConfig(), **TINY, data_dir=str(data), out_dir=str(rd))
    directory.prepare(cfg, rd, force=True)
    return rd


def drain(stream) -> None:
    for _ in iter(lambda: stream.read(65536), b""):
        pass


def one(case: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        rd = make_run(Path(d))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen([sys.executable, "-m", "gpttui.engine", str(rd)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        readers = []
        if case in ("reading", "socket"):
            readers = [threading.Thread(target=drain, args=(s,), daemon=True) for s in (p.stdout, p.stderr)]
            for t in readers:
                t.start()
        while (engine_state.read_info(rd) or engine_state.EngineInfo(0, "", 0, 0)).iter < 200:
            time.sleep(0.1)  # past start-up
        info = engine_state.read_info(rd)
        sock = None
        if case in ("socket", "both"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(info.socket)
        proc = psutil.Process(p.pid)
        t0, rss0 = time.time(), proc.memory_info().rss
        time.sleep(seconds)
        t1, rss1 = time.time(), proc.memory_info().rss
        p.terminate()
        if case in ("frozen", "both"):  # thaw so it can finish cleanly
            for s in (p.stdout, p.stderr):
                threading.Thread(target=drain, args=(s,), daemon=True).start()
        p.wait(60)
        if sock is not None:
            sock.close()
        steps = [json.loads(line) for line in open(rd / "metrics.jsonl") if '"type":"step"' in line]
        window = [e for e in steps if t0 <= e["t"] <= t1]
        iters = sorted(e["iter"] for e in steps)
        return {"its": len(window) / (t1 - t0), "recorded": len(iters),
                "done": iters[-1] + 1 if iters else 0, "rss_mb": (rss1 - rss0) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = None
    for case in ("reading", "frozen", "socket", "both"):
        runs = [one(case, args.seconds) for _ in range(args.repeat)]
        its = statistics.median(r["its"] for r in runs)
        base = base or its
        lost = sum(r["done"] - r["recorded"] for r in runs)
        print(f"{case:8} {its:7.0f} it/s ({its / base:4.2f}x)  steps missing from metrics.jsonl: {lost}  "
              f"RSS growth over {args.seconds:.0f}s: {statistics.median(r['rss_mb'] for r in runs):+.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
