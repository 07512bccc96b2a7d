"""The engine's pipes: a reader that never reads must not slow training or lose lossless events."""

from __future__ import annotations

import io
import json
import os
import threading
import time

from gpttui.engine.channel import Channel, CommandReader, LineWriter
from gpttui.run import protocol


def test_full_pipe_never_blocks_and_keeps_every_lossless_event(tmp_path):
    r, w = os.pipe()
    out = os.fdopen(w, "wb", buffering=0)
    chan = Channel(tmp_path, out, None)
    t0 = time.perf_counter()
    for i in range(20_000):  # ~2 MB of step events: far beyond a 64 KiB pipe nobody reads
        chan.emit("step", i, loss=1.0, lr=1e-3, dt_ms=1.0, tokens_per_s=1.0, mfu=0.1, grad_norm=1.0)
        if i % 1000 == 0:
            chan.emit("eval", i, train_loss=2.0, val_loss=2.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10  # it returned at all: the writer thread holds the blocked write, not us
    chan.emit("state", 20_000, state="finished")

    got: list[dict] = []
    reader = os.fdopen(r, "rb")
    done = threading.Event()

    def read() -> None:
        for line in reader:
            got.append(json.loads(line))
            if got[-1]["type"] == "state":
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10)
    types = [e["type"] for e in got]
    assert types.count("eval") == 20 and types[-1] == "state"
    steps = [e["iter"] for e in got if e["type"] == "step"]
    assert len(steps) < 20_000 and steps == sorted(steps)   # coalesced, in order
    assert steps[-1] == 19_999                              # the newest step kept
    # metrics.jsonl has every event regardless
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 20_000 + 20 + 1
    chan.close()


def test_broken_pipe_is_survived(tmp_path):
    r, w = os.pipe()
    os.close(r)
    writer = LineWriter(os.fdopen(w, "wb"))
    writer.put(b"x\n")
    writer.close()
    assert writer.broken
    writer.put(b"y\n")  # later events are dropped silently


def test_command_reader_decodes_and_reports_bad_lines():
    stream = io.StringIO('{"cmd":"pause"}\n\nnonsense\n{"cmd":"set","max_iters":9}\n')
    reader = CommandReader(stream)
    reader.thread.join(5)
    got = reader.drain()
    assert got[0] == protocol.Command("pause", {})
    assert isinstance(got[1], str) and "nonsense" in got[1]
    assert got[2] == protocol.Command("set", {"max_iters": 9})
    assert reader.wait(0.05) == []  # end of input: nothing more, no error


def test_log_lines_go_to_engine_log_and_stderr(tmp_path):
    r, w = os.pipe()
    chan = Channel(tmp_path, None, os.fdopen(w, "wb"))
    chan.log("step 0: train loss 4.1, val loss 4.2")
    chan.note("dtype float16 asked for")
    chan.close()
    assert os.read(r, 1000).decode().splitlines() == ["step 0: train loss 4.1, val loss 4.2",
                                                      "dtype float16 asked for"]
    assert (tmp_path / "engine.log").read_text().count("\n") == 2
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["message"] == "dtype float16 asked for"
