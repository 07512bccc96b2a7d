"""The run mirrored to W&B (`wandb_log = True`) and TensorBoard (`tensorboard_log = True`) from the
engine's events, off the training loop: W&B in offline mode (no network) holds nanoGPT's figures;
a missing package or a refused login is a one-line warning and the run finishes; a sink that
blocks never holds up the listener the training loop calls."""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path

import pytest
from engine_kit import EngineProc, prepare_run, read_events

from gpttui.engine import mirror

TINY_RUN = dict(max_iters=30, eval_interval=10, eval_iters=2, log_interval=5)


def wandb_records(run_file: Path) -> list:
    """The records of an offline run's .wandb file: W&B's LevelDB-style log (a 7-byte header, then
    32 KiB blocks of chunks: crc32, length, type FULL/FIRST/MIDDLE/LAST), each a wandb Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos = run_file.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    raw, part = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):      # the block's padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            raw.append(part + chunk)
            part = b""
        else:
            part += chunk
    records = []
    for r in raw:
        rec = pb.Record()
        rec.ParseFromString(r)
        records.append(rec)
    return records


def history_rows(records: list) -> list[dict]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def offline_env(tmp_path: Path) -> dict[str, str]:
    return {"WANDB_MODE": "offline", "HOME": str(tmp_path / "home"), "WANDB_CONFIG_DIR": str(tmp_path / "wandbcfg"),
            "WANDB_CACHE_DIR": str(tmp_path / "wandbcache")}


def test_offline_wandb_run_holds_nanogpts_figures_and_tensorboard_the_rest(tmp_path, char_data):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = prepare_run(char_data, tmp_path / "run", **TINY_RUN, wandb_log=True, wandb_project="gpttui-test",
                      wandb_run_name="tiny-offline", tensorboard_log=True)
    eng = EngineProc(run, env=offline_env(tmp_path))      # every stdout line must parse as an event
    assert eng.finish(timeout=180) == 0, eng.stderr
    evals = {e["iter"]: e for e in read_events(run, "eval")}
    steps = {e["iter"]: e for e in read_events(run, "step")}
    assert sorted(evals) == [0, 10, 20, 30]

    (run_file,) = run.glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    (meta,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (meta.project, meta.display_name) == ("gpttui-test", "tiny-offline")
    rows = history_rows(records)
    by_iter: dict[int, dict] = {}
    for row in rows:
        by_iter.setdefault(row["iter"], {}).update(row)
    for it, ev in evals.items():
        assert by_iter[it]["val/loss"] == pytest.approx(ev["val_loss"])
        assert by_iter[it]["train/loss"] == pytest.approx(ev["train_loss"])
    assert by_iter[20]["lr"] == pytest.approx(steps[19]["lr"])           # the rate of the last step before it
    assert 0 < by_iter[20]["mfu"] < 100                                    # a percentage, as nanoGPT logs it
    assert {it for it, row in by_iter.items() if "step/loss" in row} == {0, 5, 10, 15, 20, 25}   # log_interval
    assert by_iter[15]["step/loss"] == pytest.approx(steps[15]["loss"])

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("step/loss")] == sorted(steps)    # every step, live
    assert {e.step: e.value for e in acc.Scalars("eval/val_loss")} == pytest.approx(
        {it: ev["val_loss"] for it, ev in evals.items()})


def test_missing_wandb_is_one_warning_and_the_run_finishes(tmp_path, char_data):
    fake = tmp_path / "nowandb" / "wandb"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    run = prepare_run(char_data, tmp_path / "run", **{**TINY_RUN, "max_iters": 10}, wandb_log=True)
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    eng = EngineProc(run, env=env)
    assert eng.finish(timeout=120) == 0, eng.stderr
    warnings = [e["message"] for e in eng.events if e["type"] == "log" and "warning" in e["message"]]
    assert warnings == ["warning: not mirroring the run: wandb_log = True but the wandb package "
                        "is not installed: pip install 'gpttui[wandb]'"]
    assert [e["state"] for e in eng.events if e["type"] == "state"][-1] == "finished"
    assert max(read_events(run, "step"), key=lambda e: e["iter"])["iter"] == 9


def test_a_refused_login_is_one_warning_and_the_run_finishes(tmp_path, char_data):
    """Online mode with no API key anywhere and no terminal to ask on: wandb.init refuses."""
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    run = prepare_run(char_data, tmp_path / "run", **{**TINY_RUN, "max_iters": 10}, wandb_log=True)
    env = {**offline_env(tmp_path), "WANDB_MODE": "online", "WANDB_API_KEY": "", "NETRC": str(tmp_path / "nonetrc")}
    eng = EngineProc(run, env=env)
    assert eng.finish(timeout=180) == 0, eng.stderr
    warnings = [e["message"] for e in eng.events if e["type"] == "log" and e["message"].startswith("warning:")]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert warnings[0].startswith("warning: not mirroring the run: W&B did not start (") and "WANDB_MODE=offline" in warnings[0]
    assert [e["state"] for e in eng.events if e["type"] == "state"][-1] == "finished"


class Blocking(mirror.Sink):
    """A sink stuck as on a dead network, until released."""

    name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[dict] = []

    def handle(self, event: dict) -> None:
        self.release.wait()
        self.seen.append(event)


def test_a_stuck_sink_never_blocks_the_listener_and_keeps_every_eval():
    sink = Blocking()
    notes: list[str] = []
    m = mirror.Mirror([("stuck", lambda: sink)], notes.append)
    n = mirror.MAX_QUEUED_STEPS * 3
    for it in range(n):            # returns although the sink takes nothing: the queue is bounded
        m.listener({"type": "step", "iter": it, "loss": 1.0}, "")
        if it % 100 == 0:
            m.listener({"type": "eval", "iter": it, "val_loss": 2.0}, "")
    assert m.dropped >= n - mirror.MAX_QUEUED_STEPS - 1
    sink.release.set()
    m.close(timeout=30)
    assert not any(f.thread.is_alive() for f in m.feeds)
    assert [e["iter"] for e in sink.seen if e["type"] == "eval"] == list(range(0, n, 100))
    assert len([e for e in sink.seen if e["type"] == "step"]) <= mirror.MAX_QUEUED_STEPS + 1
    assert notes == []


class Failing(mirror.Sink):
    name = "flaky"

    def handle(self, event: dict) -> None:
        raise ConnectionError("network is unreachable\nretrying later")


def test_a_failing_sink_is_said_once_and_switched_off():
    notes: list[str] = []

    def refuse() -> mirror.Sink:
        raise PermissionError("login refused")

    m = mirror.Mirror([("refusing", refuse), ("flaky", Failing)], notes.append)
    for it in range(50):
        m.listener({"type": "step", "iter": it, "loss": 1.0}, "")
    m.close(timeout=30)
    assert sorted(notes) == ["warning: flaky mirror stopped: ConnectionError: network is unreachable",
                             "warning: not mirroring the run: PermissionError: login refused"]


def test_tensorboard_mirror_follows_a_resume_from_an_earlier_checkpoint(tmp_path):
    """Iterations 0..9, then an engine resumed from the checkpoint at 5 redoes 5..9: TensorBoard
    (reading the live files) shows each iteration once, the new branch's value."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for start, loss in ((0, 1.0), (5, 2.0)):           # two engine sessions, one live file each
        sink = mirror.TensorBoardSink(tmp_path / "tb")
        sink.handle({"type": "hello", "iter": start, "start_iter": start})
        for it in range(start, 10):
            sink.handle({"type": "step", "iter": it, "t": 1000.0 + it, "loss": loss})
        sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    shown = [(e.step, e.value) for e in acc.Scalars("step/loss")]
    assert shown == [(i, 1.0) for i in range(5)] + [(i, 2.0) for i in range(5, 10)]


def test_a_sink_still_starting_at_the_end_is_left_behind_with_one_warning():
    """A W&B login that hangs: the run's end waits only the start-up grace, says so once, and
    the late failure of the abandoned login says nothing (the run's log is closed by then)."""
    release = threading.Event()
    notes: list[str] = []

    def hanging_login() -> mirror.Sink:
        release.wait()
        raise ConnectionError("timed out")

    m = mirror.Mirror([("W&B", hanging_login)], notes.append)
    m.listener({"type": "eval", "iter": 0, "val_loss": 2.0}, "")
    m.close(timeout=60, startup_grace=0.2)
    assert notes == ["warning: W&B had not started when the run ended; not waiting for it"]
    release.set()
    m.feeds[0].thread.join(30)
    assert not m.feeds[0].thread.is_alive() and len(notes) == 1


def test_a_wandb_server_that_never_answers_neither_slows_training_nor_holds_the_exit(tmp_path, char_data):
    """A real socket that accepts and never replies stands for a hung network: W&B (online, a
    key set) waits on it in its side process; the run trains to the end, ends with one warning,
    and the engine exits without waiting out W&B's own timeouts (90 s and more), its side
    process and wandb-core gone."""
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    import socket

    import psutil

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(server.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
    run = prepare_run(char_data, tmp_path / "run", **TINY_RUN, wandb_log=True)
    env = {**offline_env(tmp_path), "WANDB_MODE": "online", "WANDB_API_KEY": "a" * 40,
           "WANDB_BASE_URL": f"http://127.0.0.1:{server.getsockname()[1]}"}
    eng = EngineProc(run, env=env)
    try:
        assert eng.finish(timeout=60) == 0, eng.stderr
    finally:
        eng.proc.kill()
    assert [e["iter"] for e in read_events(run, "step")] == list(range(30))
    warnings = [e["message"] for e in eng.events if e["type"] == "log" and e["message"].startswith("warning:")]
    assert warnings == ["warning: W&B had not started when the run ended; stopped it (what it kept is in its "
                        "wandb/ directory)"]
    assert [e["state"] for e in eng.events if e["type"] == "state"][-1] == "finished"
    left = [p for p in psutil.process_iter(["cmdline", "environ"])
            if (p.info["environ"] or {}).get("WANDB_BASE_URL") == env["WANDB_BASE_URL"]]
    assert left == []
    server.close()
