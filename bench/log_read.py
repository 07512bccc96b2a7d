"""What reading a nanoGPT log costs: whole (`gpttui open`, `doctor`) and as train.py writes it
(`gpttui open` polls a log twice a second).

Writes a log of `--iters` iterations (an `iter` line each, an eval every 250), then times, `--runs`
times each: reading it whole as lines (`Path.read_text().splitlines()`: the baseline),
`nanogpt_log.parse` of that text, and `LogReader.read()` of the file (what open and doctor do);
then, for the same reader, one poll after train.py has added `--new` lines (it must cost what the
new lines cost, whatever the log's size), and one poll with nothing new. Prints medians and the
ratio to the baseline.

    python bench/log_read.py [--iters 200000] [--new 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import median_time

from gpttui.run import nanogpt_log

HEADER = "Overriding config with config/train_shakespeare_char.py:\nn_layer = 6\nn_embd = 384\n" \
         "tokens per iteration will be: 16,384\nnumber of parameters: 10.65M\n"


def lines(start: int, stop: int) -> str:
    out = []
    for i in range(start, stop):
        if i % 250 == 0:
            out.append(f"step {i}: train loss {4.0 - i * 1e-5:.4f}, val loss {4.1 - i * 1e-5:.4f}\n")
        out.append(f"iter {i}: loss {4.0 - i * 1e-5:.4f}, time 120.50ms, mfu 31.20%\n")
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        log.write_text(HEADER + lines(0, args.iters))
        n = len(log.read_text().splitlines())
        base = median_time(lambda: log.read_text().splitlines(), args.runs)
        parse = median_time(lambda: nanogpt_log.parse(log.read_text()), args.runs)
        whole = median_time(lambda: nanogpt_log.LogReader(log).read(), args.runs)
        print(f"{n:,} lines, {log.stat().st_size / 2**20:.1f} MiB")
        print(f"  read as lines (baseline)   {base * 1e3:9.1f} ms")
        print(f"  parse                      {parse * 1e3:9.1f} ms  {parse / base:6.1f}x")
        print(f"  LogReader.read(), whole    {whole * 1e3:9.1f} ms  {whole / base:6.1f}x  "
              f"{whole / n * 1e6:.2f} us/line")
        polls, idle = [], []
        reader = nanogpt_log.LogReader(log)
        reader.read()
        at = args.iters
        for _ in range(args.runs):
            with open(log, "a") as f:
                f.write(lines(at, at + args.new))
            at += args.new
            t = time.perf_counter()
            got = reader.read()
            polls.append(time.perf_counter() - t)
            assert len(got) >= args.new
            t = time.perf_counter()
            reader.read()
            idle.append(time.perf_counter() - t)
        print(f"  a poll, {args.new} new lines      {statistics.median(polls) * 1e3:9.3f} ms")
        print(f"  a poll, nothing new        {statistics.median(idle) * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
