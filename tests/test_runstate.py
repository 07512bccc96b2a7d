import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gpttui.fs import atomic
from gpttui.run import engine_state, layout


def test_engine_status_holds_the_lock_and_reports_alive_then_none(tmp_path):
    es = engine_state.EngineStatus(tmp_path)
    es.acquire()
    es.start()
    es.update(state="running", iter=42)
    st = engine_state.status(tmp_path)
    assert st.kind == "alive" and st.info.pid == os.getpid()
    es.close("finished", exit_code=0)
    st = engine_state.status(tmp_path)
    assert st.kind == "none"
    assert (st.info.state, st.info.iter, st.info.exit_code) == ("finished", 42, 0)
    assert "the last one finished at iteration 42" in st.describe(tmp_path)


def test_a_second_engine_is_refused_naming_the_first_and_how_to_attach(tmp_path):
    first = engine_state.EngineStatus(tmp_path)
    first.acquire()
    first.update(state="running", iter=7)
    first._write()
    second = engine_state.EngineStatus(tmp_path)
    with pytest.raises(engine_state.RunLocked) as e:
        second.acquire(wait=0.2)
    msg = str(e.value)
    assert f"engine pid {os.getpid()}" in msg and f"gpttui attach {tmp_path}" in msg
    assert "running at iteration 7" in msg
    first.close("stopped")
    second.acquire(wait=0.2)  # free once the first let go
    second.close("stopped")


def test_heartbeat_refreshes_and_survives_write_errors(tmp_path, monkeypatch):
    es = engine_state.EngineStatus(tmp_path, interval=0.05)
    es.acquire()
    first = engine_state.read_info(tmp_path).heartbeat
    real = atomic.write_bytes
    failures = []

    def flaky(path, data):
        if len(failures) < 3:
            failures.append(1)
            raise OSError(errno.EIO, "Input/output error")
        real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", flaky)
    es.start()
    deadline = time.time() + 5
    while time.time() < deadline and engine_state.read_info(tmp_path).heartbeat == first:
        time.sleep(0.02)
    assert len(failures) == 3 and engine_state.read_info(tmp_path).heartbeat > first
    es.close("stopped")


def test_a_killed_engine_leaves_a_stale_status_and_a_free_lock(tmp_path):
    code = (
        "import sys, time; from gpttui.run import engine_state\n"
        "es = engine_state.EngineStatus(sys.argv[1]); es.acquire(); es.start()\n"
        "es.update(state='running', iter=12); time.sleep(0.2); print('ready', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        assert engine_state.status(tmp_path).kind == "alive"
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        st = engine_state.status(tmp_path)
        assert st.kind == "stale" and st.info.pid == p.pid and st.info.iter == 12
        assert "died while running at iteration 12" in st.describe(tmp_path)
        es = engine_state.EngineStatus(tmp_path)  # a new engine may take over
        es.acquire(wait=0.2)
        es.close("stopped")
    finally:
        p.kill()
        p.wait()


def test_status_of_an_empty_or_garbled_directory_is_none(tmp_path):
    assert engine_state.status(tmp_path).kind == "none"
    assert engine_state.status(tmp_path / "missing").kind == "none"
    (tmp_path / layout.ENGINE_STATUS).write_text("{not json")
    assert engine_state.read_info(tmp_path) is None
    assert engine_state.status(tmp_path).kind == "none"


def test_status_of_an_engine_on_another_host_trusts_the_heartbeat(tmp_path):
    info = {"pid": 1, "host": "elsewhere.invalid", "started": time.time() - 100,
            "heartbeat": time.time(), "state": "running", "iter": 5}
    (tmp_path / layout.ENGINE_STATUS).write_text(json.dumps(info))
    assert engine_state.status(tmp_path).kind == "alive"
    info["heartbeat"] = time.time() - 3600
    (tmp_path / layout.ENGINE_STATUS).write_text(json.dumps(info))
    assert engine_state.status(tmp_path).kind == "stale"


def test_status_is_rewritten_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    es = engine_state.EngineStatus(tmp_path)
    es.acquire()
    es.update(state="running", iter=40)
    es._write()

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_bytes", no_space)
    es.update(state="paused", reason="disk full", iter=41)
    es._write()
    info = engine_state.read_info(tmp_path)
    assert (info.state, info.reason, info.iter) == ("paused", "disk full", 41)
    assert (tmp_path / layout.ENGINE_STATUS).stat().st_size == engine_state.STATUS_BYTES
    es.close("stopped")
