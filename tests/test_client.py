"""The UI's side of the transports: ProtocolProcess (a generic child speaking the protocol, here
a few lines of Python) and SocketClient (hostile lines, many clients at once)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

from engine_kit import wait_for

from gpttui.ipc import inbox, process
from gpttui.ipc.client import SocketClient
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


def _drain_until(p: process.ProtocolProcess | SocketClient, pred, timeout: float = 10.0) -> inbox.Drained:
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


def test_hostile_lines_from_a_child_are_counted_and_never_reach_the_ui():
    script = (
        "import sys\n"
        "sys.stdout.write('{\"type\": \"step\", \"iter\": 99999999999999999999999, \"loss\": 1.0}\\n')\n"
        "sys.stdout.write('{\"type\": \"hello\", \"iter\": 0, \"device\": 1, \"start_iter\": 0}\\n')\n"
        "sys.stdout.write('[' * 100000 + '\\n')\n"
        "sys.stdout.write('x' * (17 << 20) + '\\n')\n"
        "sys.stdout.write('{\"type\": \"step\", \"iter\": 1, \"loss\": 2.0}\\n')\n"
        "sys.stderr.write('e' * (20 << 20) + '\\nlast words\\n')\n"
    )
    p = process.ProtocolProcess([sys.executable, "-c", script])
    got = _drain_until(p, lambda g: p.finished_reading and any(e["type"] == "step" for e in g.events), 30)
    assert [(e["type"], e["iter"]) for e in got.events] == [("hello", 0), ("step", 1)]
    assert "device" not in got.events[0]
    assert got.bad_lines == 3
    assert max(len(line) for line in got.stderr) <= inbox.MAX_LOG_LINE + 1   # endless lines are cut
    assert got.stderr[-1] == "last words"


def test_hostile_lines_on_the_socket_are_counted_and_the_good_ones_arrive(engine):
    run_dir, _, server, _ = engine
    client = SocketClient(run_dir)
    hostile = ['{"type": "step", "iter": 99999999999999999999999, "loss": 1.0}',
               '{"type": "eval", "iter": 2, "train_loss": NaN, "val_loss": {"a": [1]}}',
               "[" * 100_000, '{"type": "log", "iter": 0, "message": 5}', "\u00ff\u0000 garbage"]
    for line in hostile:
        server.publish({"type": "log"}, line + "\n")
    server.publish({"type": "hello"}, json.dumps({"type": "hello", "iter": 0, "device": 1, "start_iter": 0}) + "\n")
    ev = protocol.event("eval", 3, train_loss=2.0, val_loss=2.1)
    server.publish(ev, protocol.encode(ev))
    got = _drain_until(client, lambda g: any(e["type"] == "eval" for e in g.events), 10)
    assert [(e["type"], e["iter"]) for e in got.events if e["type"] != "log"] == [("hello", 0), ("eval", 3)]
    assert got.bad_lines == len(hostile)
    client.close()


def test_an_engine_log_line_longer_than_a_read_does_not_stall_the_log_tail(engine):
    run_dir, _, _, _ = engine
    client = SocketClient(run_dir)
    with open(run_dir / "engine.log", "ab") as f:
        f.write(b"x" * (3 << 20) + b"\nafter the long line\n")
    wait_for(lambda: "after the long line" in client.stderr_tail(5), 10, "the line after the long one")
    assert client.stderr_tail(1) == ["after the long line"]
    assert all(len(line) <= inbox.MAX_LOG_LINE + 1 for line in client.stderr_tail(10))
    client.close()


def test_a_command_of_the_wrong_shape_gets_an_error_and_the_socket_keeps_serving(engine):
    run_dir, _, server, commands = engine
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(server.path))
    sock.sendall(b'{"cmd": {}}\n{"cmd": "set", "key": [1], "value": 2}\n{"cmd": "pause"}\n')
    assert commands.get(timeout=5).cmd == "pause"
    stream = sock.makefile("rb")
    errors = []
    sock.settimeout(5)
    while len(errors) < 2:
        ev = json.loads(stream.readline())
        if ev["type"] == "error":
            errors.append(ev["message"])
    assert "unknown command {}" in errors[0] and '"key" must be a field name' in errors[1]
    sock.close()


def test_two_hundred_clients_attaching_at_once_all_get_in(engine):
    run_dir, _, server, _ = engine
    clients: list[SocketClient] = []
    failures: list[str] = []
    start = threading.Barrier(200)
    lock = threading.Lock()

    def attach() -> None:
        start.wait()
        try:
            c = SocketClient(run_dir)
        except Exception as e:  # recorded: the assertion names it
            with lock:
                failures.append(f"{type(e).__name__}: {e}")
            return
        with lock:
            clients.append(c)

    threads = [threading.Thread(target=attach) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == [] and len(clients) == 200
    wait_for(lambda: server.client_count >= 200, 10, "200 clients served")
    assert server.client_count == 200
    for c in clients:
        c.close()


def test_the_listen_backlog_holds_connects_while_the_engine_is_busy(engine):
    """While the server's I/O thread can't accept (here: its lock held, as by a long publish),
    the kernel's queue takes the connects; beyond the backlog a non-blocking connect fails."""
    run_dir, _, server, _ = engine
    socks, refused = [], 0
    with server._mu:
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(server.path))
                socks.append(s)
            except BlockingIOError:
                refused += 1
                s.close()
    assert refused == 0 and len(socks) == 100
    wait_for(lambda: server.client_count >= 100, 10, "100 clients served")
    assert server.client_count == 100
    for s in socks:
        s.close()
