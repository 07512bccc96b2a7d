"""ProtocolProcess: a generic child speaking the protocol (here a few lines of Python)."""

from __future__ import annotations

import sys
import time

from gpttui.ipc import inbox, process
from gpttui.run import protocol

# Echoes every command back as a log event, writes a stray line and some stderr, then
# exits with the code given by a `set` command's "code" value.
ECHO = r"""
import json, sys
from gpttui.run import protocol
sys.stderr.write("engine says hi\n"); sys.stderr.flush()
print("not json at all", flush=True)
for line in sys.stdin:
    c = protocol.decode_command(line)
    sys.stdout.write(protocol.encode(protocol.event("log", 0, message=c.cmd + json.dumps(c.values))))
    sys.stdout.flush()
    if c.cmd == "set":
        sys.exit(c.values["code"])
"""


def _drain_until(p: process.ProtocolProcess, pred, timeout: float = 10.0) -> inbox.Drained:
    got = inbox.Drained()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = p.drain()
        got.events += d.events
        got.stderr += d.stderr
        got.bad_lines += d.bad_lines
        if pred(got):
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out; got {got}")


def test_send_drain_exit_code_and_stderr():
    p = process.ProtocolProcess([sys.executable, "-c", ECHO])
    assert p.send("pause")
    assert p.send("set", max_iters=10, code=0)
    got = _drain_until(p, lambda g: len(g.events) >= 2 and p.finished_reading)
    assert [e["message"] for e in got.events] == ["pause{}", 'set{"max_iters": 10, "code": 0}']
    assert "engine says hi" in got.stderr and "not json at all" in got.stderr
    assert got.bad_lines == 1
    assert p.returncode == 0 and not p.alive
    assert "engine says hi" in p.stderr_tail()
    assert p.send("pause") is False  # the child is gone: no exception, just False


def test_nonzero_exit_code_is_reported():
    p = process.ProtocolProcess([sys.executable, "-c", ECHO])
    p.send("set", code=3)
    assert p.wait(10) == 3
    assert p.returncode == 3


def test_terminate_a_child_that_ignores_stdin():
    p = process.ProtocolProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    assert p.alive
    code = p.terminate(grace=2)
    assert code is not None and not p.alive


def test_backlog_is_bounded_and_keeps_lossless_events(monkeypatch):
    monkeypatch.setattr(inbox, "MAX_PENDING", 1000)
    script = (
        "import sys\nfrom gpttui.run import protocol\n"
        "for i in range(5000):\n"
        "    sys.stdout.write(protocol.encode(protocol.event('step', i, loss=1.0, lr=1e-3, dt_ms=1.0,"
        " tokens_per_s=1.0, mfu=0.1, grad_norm=1.0)))\n"
        "    if i % 100 == 0:\n"
        "        sys.stdout.write(protocol.encode(protocol.event('eval', i, train_loss=1.0, val_loss=1.0)))\n"
    )
    p = process.ProtocolProcess([sys.executable, "-c", script])
    p.wait(20)
    while not p.finished_reading:
        time.sleep(0.01)
    d = p.drain()
    steps = [e for e in d.events if e["type"] == "step"]
    evals = [e for e in d.events if e["type"] == "eval"]
    assert len(evals) == 50                      # never dropped
    assert len(d.events) <= 1001
    assert d.dropped == 5000 - len(steps)        # counted, so the UI can say so
    assert [e["iter"] for e in steps] == sorted(e["iter"] for e in steps)


def test_engine_argv_runs_the_engine_module_unbuffered(tmp_path):
    argv = process.engine_argv(tmp_path, ["--max_iters=5"])
    assert argv[:3] == [sys.executable, "-m", "gpttui.engine"]
    assert argv[3:] == [str(tmp_path), "--max_iters=5"]
    assert protocol.command("pause") == '{"cmd":"pause"}\n'
