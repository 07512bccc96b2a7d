"""The engine process as the UI drives it: events out, commands in, resume, faults."""

from __future__ import annotations

import time
import tomllib

import pytest
import torch
from engine_kit import EngineProc, prepare_run, read_events, step_losses

from gpttui.engine import checkpoint as K
from gpttui.run import config as C
from gpttui.run import sizing


def test_loss_falls_and_run_dir_is_complete(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=60, eval_interval=30, learning_rate=1e-2, min_lr=1e-3)
    eng = EngineProc(run)
    assert eng.finish() == 0, eng.stderr
    evals = read_events(run, "eval")
    assert [e["iter"] for e in evals] == [0, 30, 60]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5  # from ~4.2 (ln 65) toward 3
    hello = read_events(run, "hello")[0]
    derived = sizing.derive(C.load(run).config)  # the torch-free count agrees with the real model
    assert hello["params"] == {"total": derived.params_total, "nanogpt": derived.params_nanogpt,
                               "non_embedding": derived.params_non_embedding}
    assert hello["start_iter"] == 0
    assert hello["device"] == "cpu" and hello["dtype"] == "float32"
    steps = read_events(run, "step")
    assert [s["iter"] for s in steps] == list(range(60))  # a step event every iteration
    assert all(s["tokens_per_s"] > 0 and 0 < s["mfu"] < 1 and s["grad_norm"] > 0 for s in steps)
    assert steps[-1]["tokens"] == 60 * 8 * 16
    assert read_events(run, "state")[-1]["state"] == "finished"
    assert K.load(run / "ckpt.pt")["iter_num"] == 60
    log = (run / "engine.log").read_text()
    assert "step 30: train loss" in log and "saving checkpoint to" in log
    assert "iter 59: loss " in log and "tok/s" in log and "number of parameters: 0.03M" in log
    # events on stdout are the same stream as metrics.jsonl
    assert [e["type"] for e in eng.events] == [e["type"] for e in read_events(run)]


def test_stop_then_resume_follows_the_same_loss_curve(char_data, tmp_path):
    straight = prepare_run(char_data, tmp_path / "straight", max_iters=40)
    assert EngineProc(straight).finish() == 0

    run = prepare_run(char_data, tmp_path / "stopped", max_iters=40)
    eng = EngineProc(run)
    eng.wait_step(12)
    eng.send({"cmd": "stop"})
    assert eng.finish() == 0, eng.stderr
    stopped_at = K.load(run / "ckpt.pt")["iter_num"]
    assert 12 < stopped_at < 40
    assert read_events(run, "state")[-1]["state"] == "stopped"

    again = EngineProc(run, "--init_from=resume")
    assert again.finish() == 0, again.stderr
    hellos = read_events(run, "hello")
    assert hellos[-1]["start_iter"] == stopped_at
    resumed = [e["iter"] for e in read_events(run, "step") if e["t"] >= hellos[-1]["t"]]
    assert resumed[0] == stopped_at and resumed[-1] == 39
    a, b = step_losses(straight), step_losses(run)
    assert sorted(b) == list(range(40))
    assert [b[i] for i in range(40)] == pytest.approx([a[i] for i in range(40)], rel=1e-5)


def test_pause_holds_the_iteration_and_resume_continues(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    eng = EngineProc(run)
    eng.wait_step(5)
    eng.send({"cmd": "pause"})
    paused = eng.wait_state("paused")
    time.sleep(1.0)
    n_steps = len([e for e in eng.events if e["type"] == "step"])
    last = max(e["iter"] for e in eng.events if e["type"] == "step")
    assert last <= paused["iter"]  # nothing trained after the pause took effect
    time.sleep(0.5)
    assert len([e for e in eng.events if e["type"] == "step"]) == n_steps
    eng.send({"cmd": "resume"})
    eng.wait_state("running")
    step = eng.wait_step(last + 3)
    assert step["iter"] >= last + 3
    eng.send({"cmd": "stop"})
    assert eng.finish() == 0


def test_eval_and_save_work_while_paused(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000, eval_interval=1000)
    eng = EngineProc(run)
    eng.wait_step(5)
    eng.send({"cmd": "pause"})
    paused = eng.wait_state("paused")
    eng.send({"cmd": "eval"})
    ev = eng.wait_for(lambda e: e["type"] == "eval" and e["iter"] == paused["iter"])
    assert ev["val_loss"] > 0
    eng.send({"cmd": "save"})
    ck = eng.wait_for(lambda e: e["type"] == "checkpoint" and e["iter"] == paused["iter"])
    assert K.load(run / "ckpt.pt")["iter_num"] == ck["iter"]
    after = eng.wait_for(lambda e: e["type"] == "state" and e["t"] >= ck["t"])
    assert after["state"] == "paused"  # still paused after evaluating and saving
    assert max(e["iter"] for e in eng.events if e["type"] == "step") < paused["iter"]
    eng.send({"cmd": "stop"})
    assert eng.finish() == 0


def test_set_max_iters_changes_where_it_ends(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    eng = EngineProc(run)
    eng.wait_step(3)
    eng.send({"cmd": "set", "values": {"max_iters": 25, "eval_interval": 5}})
    cfg_ev = eng.wait_for(lambda e: e["type"] == "config")
    assert cfg_ev["changes"] == {"max_iters": 25, "eval_interval": 5}
    assert eng.finish() == 0
    steps = read_events(run, "step")
    assert steps[-1]["iter"] == 24
    assert read_events(run, "state")[-1]["state"] == "finished"
    assert [e["iter"] for e in read_events(run, "eval")][-2:] == [20, 25]
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["schedule"]["max_iters"] == 25 and saved["io"]["eval_interval"] == 5


def test_bad_commands_get_error_events_and_training_goes_on(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    eng = EngineProc(run)
    eng.wait_step(2)
    for bad in ("not json", '{"cmd": "fly"}', '{"cmd": "set", "values": {"n_layer": 4}}',
                '{"cmd": "set", "values": {"max_iters": "lots"}}',
                '{"cmd": "set", "values": {"min_lr": 1.0}}'):
        eng.send(bad)
    errors = [eng.wait_for(lambda e: e["type"] == "error")["message"] for _ in range(5)]
    assert "not JSON" in errors[0]
    assert "unknown command 'fly'" in errors[1]
    assert "n_layer: cannot change while training" in errors[2]
    assert "max_iters: expected int" in errors[3]
    assert "min_lr" in errors[4] and "learning_rate" in errors[4]
    before = eng.events[-1]["iter"]
    assert eng.wait_step(before + 5)["iter"] >= before + 5
    eng.send({"cmd": "eval"})
    assert eng.wait_for(lambda e: e["type"] == "eval")["iter"] > 0
    eng.send({"cmd": "save"})
    saved = eng.wait_for(lambda e: e["type"] == "checkpoint")
    eng.send({"cmd": "stop"})
    assert eng.finish() == 0
    assert not [e for e in read_events(run, "config")]  # nothing changed
    assert K.load(run / "ckpt.pt")["iter_num"] >= saved["iter"]


def test_end_of_stdin_does_not_stop_training(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=30)
    eng = EngineProc(run)
    eng.proc.stdin.close()  # the UI detached
    assert eng.finish() == 0
    assert step_losses(run).keys() == set(range(30))


def test_sigterm_checkpoints_and_exits_cleanly(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000)
    eng = EngineProc(run)
    eng.wait_step(5)
    eng.proc.terminate()
    assert eng.finish() == 0
    assert read_events(run, "state")[-1]["state"] == "stopped"
    assert K.load(run / "ckpt.pt")["iter_num"] > 5


def test_non_finite_loss_fails_and_keeps_the_last_good_checkpoint(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100, eval_interval=10)
    eng = EngineProc(run, env={"GPTTUI_FAULT_NAN_AT": "25"})
    assert eng.finish() == 1
    err = read_events(run, "error")[-1]["message"]
    assert "non-finite loss nan at iter 25" in err and "last good checkpoint" in err
    assert read_events(run, "state")[-1]["state"] == "failed"
    assert max(step_losses(run)) == 24
    ckpt = K.load(run / "ckpt.pt")
    assert ckpt["iter_num"] == 20
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert f"error: {err}" in eng.stderr


def test_set_learning_rate_takes_effect_next_iteration(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000, decay_lr=False)
    eng = EngineProc(run)
    eng.wait_step(2)
    eng.send({"cmd": "set", "values": {"learning_rate": 1e-4, "min_lr": 1e-5}})
    changed = eng.wait_for(lambda e: e["type"] == "config")
    nxt = eng.wait_for(lambda e: e["type"] == "step")
    assert nxt["iter"] <= changed["iter"] + 1 and nxt["lr"] == pytest.approx(1e-4)
    eng.send({"cmd": "stop"})
    assert eng.finish() == 0
