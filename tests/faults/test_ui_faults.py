"""Faults on the UI side: the UI killed under a training engine, re-attaching through the
socket, the engine killed under an attached UI, `gpttui attach` with nothing to attach to."""

from __future__ import annotations

import signal
import subprocess
import sys

from app_helpers import pid_alive
from kit import ckpt_iter, events, python, wait_for

from gpttui.ipc.client import SocketClient
from gpttui.run import engine_state

# A stand-in for the dashboard: spawns the engine with pipes the way `gpttui launch` does.
UI = """
import sys, time
from gpttui.ipc.process import EngineClient
eng = EngineClient(sys.argv[1])
print(eng.pid, flush=True)
while True:
    eng.drain()
    time.sleep(0.1)
"""


def _start_ui(rd, engines):
    engines.dirs.append(rd)  # the engine outlives the UI: the fixture kills it at the end
    ui = python(UI, str(rd))
    pid = int(ui.stdout.readline())
    wait_for(lambda: (engine_state.read_info(rd) or engine_state.EngineInfo(0, "", 0, 0)).iter >= 20,
             what="the engine at iteration 20")
    return ui, pid


def _session_steps(rd):
    return [e["iter"] for e in events(rd) if e["type"] == "step"]


def test_ui_killed_engine_checkpoints_trains_on_detached_and_reattaches(make_run, engines):
    rd = make_run(eval_interval=1000)
    ui, pid = _start_ui(rd, engines)
    ui.send_signal(signal.SIGKILL)
    ui.wait(10)
    lost = wait_for(lambda: next((e for e in events(rd) if e["type"] == "log"
                                  and "the UI went away" in e["message"]), None), what="the UI-lost note")
    assert "training on detached" in lost["message"] and f"gpttui attach {rd}" in lost["message"]
    wait_for(lambda: any(e["type"] == "checkpoint" and e["iter"] >= lost["iter"] for e in events(rd)),
             what="the checkpoint taken when the UI went away")
    # engine.json is written off the training thread (advisory): it says so a moment later
    info = wait_for(lambda: (i := engine_state.read_info(rd)) and i.ui == "detached" and i,
                    what="engine.json to say detached")
    assert pid_alive(pid)
    at = info.iter
    wait_for(lambda: engine_state.read_info(rd).iter >= at + 50, what="training on, detached")

    client = SocketClient(rd, history_from=0)  # full history, then live
    got: list[dict] = []

    def seen(pred):
        got.extend(client.drain().events)
        return any(pred(e) for e in got)

    wait_for(lambda: seen(lambda e: e["type"] == "step" and e["iter"] > at + 50), what="live steps")
    assert got[0]["type"] == "state" and any(e["type"] == "hello" for e in got)
    assert client.send("pause")
    wait_for(lambda: seen(lambda e: e["type"] == "state" and e["state"] == "paused"), what="paused")
    wait_for(lambda: engine_state.read_info(rd).state == "paused", what="engine.json says paused")
    assert client.send("resume")
    wait_for(lambda: seen(lambda e: e["type"] == "state" and e["state"] == "running" and e["iter"] > at),
             what="running again")
    assert client.send("stop")
    assert client.wait(30) == 0
    assert client.exit_description == "engine stopped (stop requested)"
    wait_for(lambda: not pid_alive(pid), what="the engine process to end")
    got.extend(client.drain().events)
    on_disk = _session_steps(rd)
    assert on_disk == list(range(len(on_disk)))  # one session, every step once, nothing lost
    assert [e["iter"] for e in got if e["type"] == "step"] == on_disk  # history + live: no gap, no twice
    assert ckpt_iter(rd / "ckpt.pt") == on_disk[-1] + 1


def test_ui_killed_with_on_ui_lost_stop_checkpoints_and_exits(make_run, engines):
    rd = make_run(eval_interval=1000, on_ui_lost="stop")
    ui, pid = _start_ui(rd, engines)
    ui.send_signal(signal.SIGKILL)
    ui.wait(10)
    wait_for(lambda: not pid_alive(pid), what="the engine to stop")
    st = engine_state.status(rd)
    assert st.kind == "none" and st.info.state == "stopped"
    last = _session_steps(rd)[-1] + 1
    assert ckpt_iter(rd / "ckpt.pt") == last
    assert any(e["type"] == "log" and "on_ui_lost = 'stop'" in e["message"] for e in events(rd))


def test_engine_killed_under_an_attached_ui_is_reported_with_what_is_left(make_run, engines):
    rd = make_run(eval_interval=20)
    eng = engines(rd)
    eng.wait_event(lambda e: e["type"] == "checkpoint" and e["iter"] == 20)
    client = SocketClient(rd)
    assert client.alive
    eng.kill9()
    assert client.wait(10) == -signal.SIGKILL
    assert not client.alive and "died without recording why" in client.exit_description
    assert any("saving checkpoint" in line for line in client.stderr_tail(40))  # engine.log's tail
    assert engine_state.status(rd).kind == "stale"
    assert ckpt_iter(rd / "ckpt.pt") >= 20


def test_attach_says_clearly_when_nothing_runs_and_offers_launch(make_run):
    rd = make_run()
    r = subprocess.run([sys.executable, "-m", "gpttui", "attach", str(rd)], capture_output=True, text=True)
    assert r.returncode == 2   # refused: nothing to attach to
    assert r.stderr.strip() == f"error: no engine is running in {rd}; resume it with `gpttui launch {rd}`"
    r = subprocess.run([sys.executable, "-m", "gpttui", "attach", str(rd), "--status"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout.strip() == f"no engine is running in {rd}"
