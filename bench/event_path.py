"""The engine's whole event path under a frozen UI: cost per event and memory, over minutes.

Builds the engine's real Channel (metrics.jsonl + stdout writer thread + engine.log + stderr
writer thread) with the run's EngineHost listener (engine.json + control socket), and emits
step events plus a log line each, flat out, for `--seconds` per case:
  reading   a thread drains stdout/stderr and a socket client reads (a live UI);
  frozen    nobody reads stdout/stderr (pipes full after ~64 KB) and the socket client never
            reads (a UI frozen for the whole window);
Printed per case: median microseconds per (event + log line) over 0.5 s windows, the ratio to
`reading`, events per second, lines in metrics.jsonl vs emitted (must be equal), and the RSS
growth from the first to the last 10% of the window (flat = bounded).

    python bench/event_path.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
from pathlib import Path

import psutil
from common import per_call_windows

from gpttui.engine.channel import Channel, CommandReader
from gpttui.engine.host import EngineHost


def drain_fd(fd: int) -> None:
    while os.read(fd, 1 << 16):
        pass


def case(frozen: bool, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        rd = Path(d)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe()
        commands = CommandReader(os.fdopen(in_r, "r"))
        host = EngineHost(rd, commands.push)
        host.start()
        chan = Channel(rd, os.fdopen(out_w, "wb"), os.fdopen(err_w, "wb"))
        chan.listeners.append(host.listener)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(host.server.path))
        if not frozen:
            for fd in (out_r, err_r):
                threading.Thread(target=drain_fd, args=(fd,), daemon=True).start()
            threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(1 << 16), b"")],
                             daemon=True).start()
        proc = psutil.Process()
        rss: list[int] = []

        def emit(n: int) -> None:
            chan.emit("step", n, loss=2.5, lr=6e-4, dt_ms=1.0, tokens_per_s=64000.0, mfu=0.01,
                      grad_norm=1.0, tokens=n * 64)
            chan.log(f"iter {n}: loss 2.5000, time 1.00ms, mfu 1.00%", lossy=True)

        windows, n = per_call_windows(seconds, 0.5, emit, lambda: rss.append(proc.memory_info().rss))
        lines = sum(1 for _ in open(rd / "metrics.jsonl", "rb"))
        tenth = max(1, len(rss) // 10)
        growth = statistics.median(rss[-tenth:]) - statistics.median(rss[:tenth])
        chan.out.close(0.1)
        chan.err.close(0.1)
        host.close(0)
        sock.close()
        os.close(in_w)
        return {"us": statistics.median(windows) * 1e6, "n": n, "lines": lines, "growth": growth,
                "rate": n / seconds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    base = None
    for name, frozen in (("reading", False), ("frozen", True)):
        r = case(frozen, args.seconds)
        base = base or r["us"]
        print(f"{name:8} {r['us']:6.2f} us/event ({r['us'] / base:4.2f}x)  {r['rate']:9,.0f} events/s  "
              f"metrics.jsonl {r['lines']:,} / {r['n']:,} emitted  "
              f"RSS growth {r['growth'] / 2**20:+.1f} MiB over {args.seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
