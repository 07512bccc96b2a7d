"""Load on the engine's control socket: what publish() costs the training loop, and memory.

Publishes step events (plus an eval every 1000) as fast as possible for a few seconds in each
of: no client, one client reading, one client frozen (connected, never reading) and both.
Prints the median cost per publish (over 20 ms windows), the ratio to the no-client case, and
the server's queued bytes and the process RSS at the end (bounded when the client is frozen).

    python bench/control_load.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time

import psutil
from common import per_call_windows

from gpttui.ipc import server as control_server
from gpttui.run import protocol


def step_line(it: int) -> tuple[dict, str]:
    ev = protocol.event("step", it, loss=2.3456, lr=6e-4, dt_ms=12.5, tokens_per_s=40960.0,
                        mfu=0.41, grad_norm=0.87, tokens=it * 512)
    return ev, protocol.encode(ev)


def reader(sock: socket.socket, stop: threading.Event, counts: list[int]) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            return
        counts[0] += data.count(b"\n")


def run(kind: str, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        server = control_server.ControlServer(control_server.socket_path(d), lambda c: None)
        server.start()
        stop = threading.Event()
        counts = [0]
        socks = []
        if kind in ("reading", "both"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(server.path))
            socks.append(s)
            threading.Thread(target=reader, args=(s, stop, counts), daemon=True).start()
        if kind in ("frozen", "both"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(server.path))
            socks.append(s)
        time.sleep(0.2)
        events = [step_line(i) for i in range(1000)]
        evals = protocol.event("eval", 0, train_loss=1.0, val_loss=1.1)
        eval_line = protocol.encode(evals)

        def publish(n: int) -> None:
            server.publish(*events[n % 1000])
            if n % 1000 == 999:
                server.publish(evals, eval_line)

        windows, n = per_call_windows(seconds, 0.02, publish)
        with server._mu:
            queued = sum(c.pending_bytes + len(c.out) for c in server._conns)
        rss = psutil.Process().memory_info().rss
        stop.set()
        server.close()
        for s in socks:
            s.close()
        return {"us": statistics.median(windows) * 1e6, "n": n, "read": counts[0],
                "queued": queued, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    base = None
    for kind in ("none", "reading", "frozen", "both"):
        r = run(kind, args.seconds)
        base = base or r["us"]
        print(f"{kind:8} publish median {r['us']:6.2f} us/event ({r['us'] / base:4.2f}x)  "
              f"published {r['n']:>9,}  client read {r['read']:>9,}  "
              f"queued at end {r['queued'] / 1024:7.1f} KiB  rss {r['rss'] / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main()
