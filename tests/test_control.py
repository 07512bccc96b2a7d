import json
import os
import socket
import stat
import threading
import time

import pytest

from gpttui.ipc.client import NotRunning, SocketClient
from gpttui.ipc.server import COALESCE_AFTER, MAX_LINE, ControlServer, socket_path
from gpttui.run import protocol


def _ev(type_, it, **f):
    ev = protocol.event(type_, it, **f)
    return ev, protocol.encode(ev)


def _step(it):
    return _ev("step", it, loss=2.0, lr=1e-3, dt_ms=1.0, tokens_per_s=1.0, mfu=0.1, grad_norm=1.0)


def _drain_until(client, pred, timeout=5.0):
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got += client.drain().events
        if pred(got):
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out; got {[(e['type'], e['iter']) for e in got]}")


def _emit(run_dir, server, ev_line):
    """What the engine's channel does: metrics.jsonl first, then the socket."""
    ev, line = ev_line
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(line)
    server.publish(ev, line)


def test_socket_is_owner_only_and_streams_events_live(engine):
    run_dir, es, server, _ = engine
    mode = stat.S_IMODE(os.stat(server.path).st_mode)
    assert server.path == run_dir.resolve() / "engine.sock" and mode == 0o600
    client = SocketClient(run_dir)
    deadline = time.time() + 5
    while server.client_count == 0 and time.time() < deadline:
        time.sleep(0.01)
    for i in range(1, 4):
        server.publish(*_step(i))
    got = _drain_until(client, lambda g: len(g) >= 3)
    assert [e["iter"] for e in got] == [1, 2, 3]
    client.close()


def test_attaching_after_reading_history_leaves_no_gap_and_no_duplicate(engine, monkeypatch):
    run_dir, _, server, _ = engine
    real_accept = ControlServer._accept

    def slow_accept(self):  # a busy engine: its I/O thread takes a while to register a newcomer
        time.sleep(0.3)
        real_accept(self)

    monkeypatch.setattr(ControlServer, "_accept", slow_accept)
    for i in range(1, 21):
        _emit(run_dir, server, _step(i))
    offset = (run_dir / "metrics.jsonl").stat().st_size  # a UI read history up to here ...
    for i in range(21, 31):
        _emit(run_dir, server, _step(i))  # ... while these were written
    stop = threading.Event()

    def engine_goes_on():
        i = 31
        while not stop.is_set() and i <= 400:
            _emit(run_dir, server, _step(i))
            if i % 50 == 0:
                _emit(run_dir, server, _ev("eval", i, train_loss=1.0, val_loss=1.5))
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=engine_goes_on)
    t.start()
    client = SocketClient(run_dir, history_from=offset)
    t.join()
    got = _drain_until(client, lambda g: g and g[-1]["type"] == "eval" and g[-1]["iter"] == 400)
    assert [e["iter"] for e in got if e["type"] == "step"] == list(range(21, 401))
    assert [e["iter"] for e in got if e["type"] == "eval"] == list(range(50, 401, 50))
    client.close()


def test_commands_reach_the_engine_and_garbage_is_answered_with_an_error(engine):
    run_dir, _, _, commands = engine
    client = SocketClient(run_dir)
    assert client.send("pause")
    assert client.send("set", max_iters=500)
    assert commands.get(timeout=5) == protocol.Command("pause", {})
    assert commands.get(timeout=5) == protocol.Command("set", {"max_iters": 500})
    client.send_line("this is not json\n")
    client.send_line('{"cmd": "explode"}\n')
    client.send_line("x" * (MAX_LINE + 10) + "\n")
    errors = _drain_until(client, lambda g: sum(e["type"] == "error" for e in g) >= 3)
    messages = [e["message"] for e in errors if e["type"] == "error"]
    assert "not JSON" in messages[0] and "unknown command 'explode'" in messages[1]
    assert "longer than" in messages[2]
    assert client.send("resume")  # the connection still works after garbage
    assert commands.get(timeout=5) == protocol.Command("resume", {})
    assert commands.empty()
    client.close()


def test_a_slow_client_gets_every_lossless_event_and_coalesced_steps(engine):
    run_dir, _, server, _ = engine
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(server.path))
    time.sleep(0.2)
    n = 50_000
    for i in range(1, n + 1):
        server.publish(*_step(i))
        if i % 5000 == 0:
            server.publish(*_ev("eval", i, train_loss=1.0, val_loss=1.5))
    with server._mu:
        backlog = max(c.pending_bytes for c in server._conns)
    assert backlog < 2 * COALESCE_AFTER  # a bounded queue, not 50k steps
    raw.settimeout(5)
    data = b""
    while f'"type":"step","iter":{n},'.encode() not in data[-300:]:
        chunk = raw.recv(1 << 20)
        assert chunk
        data += chunk
    events = [json.loads(line) for line in data.decode().splitlines()]
    evals = [e["iter"] for e in events if e["type"] == "eval"]
    steps = [e["iter"] for e in events if e["type"] == "step"]
    assert evals == list(range(5000, n + 1, 5000))
    assert steps == sorted(steps) and steps[-1] == n and len(steps) < n
    raw.close()


def test_a_frozen_client_is_dropped_when_its_backlog_passes_the_bound(tmp_path):
    server = ControlServer(socket_path(tmp_path), lambda c: None, max_backlog=200_000)
    server.start()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(str(server.path))
    deadline = time.time() + 5
    while server.client_count == 0 and time.time() < deadline:
        time.sleep(0.01)
    for i in range(20_000):  # lossless log events: never coalesced
        server.publish(*_ev("log", i, message="x" * 100))
    deadline = time.time() + 5
    while server.client_count and time.time() < deadline:
        time.sleep(0.01)
    assert server.client_count == 0 and server.disconnected_slow == 1
    server.close()
    raw.close()
    assert not server.path.exists()


def test_a_long_run_dir_path_gets_a_private_socket_elsewhere(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path(deep)
    assert len(os.fsencode(path)) < 100 and path.parent != deep
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert socket_path(deep) == path  # stable: UIs find it again


def test_attach_to_nothing_says_so_and_offers_launch(tmp_path):
    with pytest.raises(NotRunning, match=f"no engine is running in {tmp_path}.*gpttui launch {tmp_path}"):
        SocketClient(tmp_path)


def test_client_learns_how_the_engine_ended(engine):
    run_dir, es, server, _ = engine
    (run_dir / "engine.log").write_text("iter 1: loss 2.0\nsaving checkpoint\n")
    client = SocketClient(run_dir)
    assert client.alive and client.returncode is None
    assert client.stderr_tail(2) == ["iter 1: loss 2.0", "saving checkpoint"]
    server.close()
    es.close("finished", exit_code=0)
    client.wait(5)
    assert client.returncode == 0 and not client.alive
    assert client.exit_description == "engine finished"
    assert not client.send("pause")
