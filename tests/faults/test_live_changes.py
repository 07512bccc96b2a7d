"""Live changes sent over the real control socket to a training engine: destructive values are
refused with the reason and never reach config.toml; a learning-rate change can be undone until
it has survived its first eval."""

from __future__ import annotations

import json
import signal

from kit import ckpt_iter, wait_for

from gpttui.analysis.live import LiveRun
from gpttui.ipc.client import SocketClient
from gpttui.run.history import RunHistory

UNDO = "ckpt_undo.pt"


class Watcher:
    """A UI attached over the socket, keeping every event it was sent."""

    def __init__(self, run_dir):
        self.client = SocketClient(run_dir)
        self.seen: list[dict] = []

    def wait(self, pred, what: str, timeout: float = 60.0) -> dict:
        def find():
            self.seen += self.client.drain().events
            return next((e for e in self.seen if pred(e)), None)
        return wait_for(find, timeout, what)

    def send_line(self, line: str) -> None:
        self.client.send_line(line + "\n")

    def close(self) -> None:
        self.client.close()


def _errors(w: Watcher) -> list[str]:
    return [e["message"] for e in w.seen if e["type"] == "error"]


def test_destructive_values_are_refused_with_the_reason_and_never_reach_config_toml(make_run, engines):
    rd = make_run(eval_interval=1000)
    eng = engines(rd)
    eng.wait_iter(5)
    before = (rd / "config.toml").read_bytes()
    ui = Watcher(rd)
    bad = ['{"cmd": "set", "values": {"learning_rate": 1e308}}',
           '{"cmd": "set", "values": {"eval_iters": 1e12}}',
           '{"cmd": "set", "values": {"min_lr": 1.0}}',
           '{"cmd": "set", "values": {"learning_rate": NaN}}',
           '{"cmd": "set", "values": {"max_iters": 3}}',
           '{"cmd": "set", "key": "eval_interval", "value": 2.5}']
    for line in bad:
        ui.send_line(line)
    ui.wait(lambda e: e["type"] == "error" and "eval_interval" in e["message"], "six refusals")
    said = _errors(ui)
    assert len(said) == 6 and all(m.startswith("set refused: ") for m in said)
    assert "learning_rate: must be in (0, 1], got 1e+308" in said[0]
    assert "eval_iters: 1,000,000,000,000 batches per split would stall training" in said[1]
    assert "min_lr: 1.0 is above learning_rate=0.003" in said[2]
    assert "learning_rate: must be a finite number, got nan" in said[3]
    assert "max_iters: 3 is behind the run" in said[4]
    assert "eval_interval: expected int, got float 2.5" in said[5]
    assert not any(e["type"] == "config" for e in ui.seen)
    now = ui.wait(lambda e: e["type"] == "step", "a step after the refusals")["iter"]
    eng.wait_iter(now + 20)  # still training, on finite losses
    eng.pump()
    assert all(e["loss"] is not None for e in eng.seen if e["type"] == "step")
    assert (rd / "config.toml").read_bytes() == before
    assert ui.client.send("set", eval_iters=3)  # a sound value still goes through
    ui.wait(lambda e: e["type"] == "config" and e["changes"] == {"eval_iters": 3}, "the sound change")
    assert "eval_iters = 3\n" in (rd / "config.toml").read_text()
    assert not (rd / UNDO).exists()  # not a learning-rate field: nothing kept to undo
    ui.close()
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0


def test_undo_returns_to_the_state_and_values_from_before_a_learning_rate_change(make_run, engines):
    rd = make_run(eval_interval=1000, keep_checkpoints=1)
    eng = engines(rd)
    eng.wait_iter(10)
    ui = Watcher(rd)
    assert ui.client.send("pause")
    paused = ui.wait(lambda e: e["type"] == "state" and e["state"] == "paused", "paused")
    at = paused["iter"]
    assert ui.client.send("set", learning_rate=0.9, min_lr=0.09)  # sound by the rules, bad for the run
    kept = ui.wait(lambda e: e["type"] == "undo", "the undo point")
    assert kept["available"] is True and kept["to_iter"] == at
    assert kept["values"] == {"learning_rate": 0.003, "min_lr": 0.0003}
    assert (rd / UNDO).is_file() and ckpt_iter(rd / UNDO) == at
    assert "learning_rate = 0.9\n" in (rd / "config.toml").read_text()
    assert ui.client.send("resume")
    eng.wait_iter(at + 15)
    eng.pump()
    first = {e["iter"]: e["loss"] for e in eng.seen if e["type"] == "step"}
    assert ui.client.send("undo")
    done = ui.wait(lambda e: e["type"] == "undo" and e.get("done"), "undo done")
    assert done["available"] is False and done["to_iter"] == at
    assert done["message"] == f"undone: back at iter {at} with learning_rate=0.003, min_lr=0.0003"
    ui.wait(lambda e: e["type"] == "config" and e["changes"] == {"learning_rate": 0.003, "min_lr": 0.0003},
            "the old values")
    ui.wait(lambda e: e["type"] == "step" and e["t"] >= done["t"] and e["iter"] >= at + 3, "steps after undo")
    after = [e for e in ui.seen if e["type"] == "step" and e["t"] >= done["t"]]
    assert after[0]["iter"] == at  # training goes on from the undo point
    # the same weights and batches: iteration `at` has the loss it had before the change stepped
    assert after[0]["loss"] == first[at]
    assert after[0]["lr"] != 0.9 and after[0]["lr"] <= 0.003
    text = (rd / "config.toml").read_text()
    assert "learning_rate = 0.003\n" in text and "min_lr = 0.0003\n" in text
    assert not (rd / UNDO).exists() and ckpt_iter(rd / "ckpt.pt") == at  # a resume starts there too
    assert ui.client.send("undo")
    ui.wait(lambda e: e["type"] == "error" and e["message"].startswith("undo refused: nothing to undo"),
            "a second undo refused")
    ui.close()
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0
    # the history and the dashboard's curve drop the undone branch, as at a resume: no zig-zag
    history = RunHistory.from_metrics(rd / "metrics.jsonl")
    iters = [s.iter for s in history.steps]
    assert iters == list(range(iters[-1] + 1))
    live = LiveRun()
    live.add_all(json.loads(line) for line in (rd / "metrics.jsonl").read_text().splitlines())
    curve = [p[0] for p in live.series.raw]
    assert curve == sorted(set(curve)) and curve[-1] == iters[-1]


def test_the_undo_point_is_dropped_once_the_change_survives_its_first_eval(make_run, engines):
    rd = make_run(eval_interval=200, keep_checkpoints=2)  # (the set lands well before the eval, even on a busy machine)
    eng = engines(rd)
    eng.wait_iter(5)
    ui = Watcher(rd)
    assert ui.client.send("set", learning_rate=2e-3)
    ui.wait(lambda e: e["type"] == "undo" and e["available"], "the undo point")  # (its file: test_undo_returns…)
    dropped = ui.wait(lambda e: e["type"] == "undo" and not e["available"], "the point dropped at the eval")
    assert dropped["iter"] == 200 and "survived its first eval" in dropped["message"]
    assert not (rd / UNDO).exists()
    # ckpt.pt and the rotation never held the undo state: they are the run's own checkpoints
    ui.wait(lambda e: e["type"] == "checkpoint" and e["iter"] == 200, "the eval's checkpoint")  # (written after the drop)
    assert sorted(p.name for p in rd.glob("ckpt*.pt")) == ["ckpt.pt", "ckpt_200.pt"]
    assert ui.client.send("undo")
    ui.wait(lambda e: e["type"] == "error" and "nothing to undo" in e["message"], "undo refused")
    ui.close()
    eng.signal(signal.SIGTERM)
    assert eng.wait(30) == 0
    lines = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines()]
    assert [e["available"] for e in lines if e["type"] == "undo"] == [True, False]


def test_an_undo_point_outlives_the_engine_until_the_change_is_evaluated(make_run, engines):
    rd = make_run(eval_interval=1000)
    eng = engines(rd)
    eng.wait_iter(8)
    ui = Watcher(rd)
    assert ui.client.send("set", learning_rate=0.5)
    kept = ui.wait(lambda e: e["type"] == "undo" and e["available"], "the undo point")
    ui.close()
    eng.wait_iter(kept["to_iter"] + 10)
    eng.signal(signal.SIGTERM)  # stopped before any eval judged the change
    assert eng.wait(30) == 0
    assert (rd / UNDO).is_file() and ckpt_iter(rd / "ckpt.pt") > kept["to_iter"]

    again = engines(rd, ["--init_from=resume"])
    offered = again.wait_event(lambda e: e["type"] == "undo", what="the undo point offered again")
    assert offered["available"] is True and offered["to_iter"] == kept["to_iter"]
    assert offered["values"] == {"learning_rate": 0.003}
    again.wait_iter(ckpt_iter(rd / "ckpt.pt") + 2)
    assert again.send("undo")
    done = again.wait_event(lambda e: e["type"] == "undo" and e.get("done"), what="undo done")
    assert done["to_iter"] == kept["to_iter"]
    assert "learning_rate = 0.003\n" in (rd / "config.toml").read_text()
    again.signal(signal.SIGTERM)
    assert again.wait(30) == 0
    assert not (rd / UNDO).exists()

    fresh = engines(rd, ["--init_from=scratch"])  # no undo point is offered to a new run
    fresh.wait_iter(3)
    fresh.signal(signal.SIGTERM)
    assert fresh.wait(30) == 0
    assert not any(e["type"] == "undo" for e in fresh.seen)


def test_two_processes_undo_together(tmp_path, char_data):
    """Under torchrun every rank takes the change, the undo point's state and the old values at the
    same iteration: one step stream on, and both ranks stop together."""
    from engine_kit import EngineProc, prepare_run, step_losses

    run = prepare_run(char_data, tmp_path / "run", max_iters=100_000, lr_decay_iters=100_000,
                      eval_interval=1000, gradient_accumulation_steps=2)
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gpttui.engine")
    eng = EngineProc(run, launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    eng.wait_step(5, timeout=120)
    eng.send({"cmd": "set", "values": {"learning_rate": 0.5}})
    kept = eng.wait_for(lambda e: e["type"] == "undo")
    eng.wait_step(kept["to_iter"] + 8)
    eng.send({"cmd": "undo"})
    done = eng.wait_for(lambda e: e["type"] == "undo" and e.get("done"))
    assert done["to_iter"] == kept["to_iter"]
    after = eng.wait_for(lambda e: e["type"] == "step")
    assert after["iter"] == kept["to_iter"] and after["lr"] <= 3e-3
    eng.wait_step(kept["to_iter"] + 5)
    eng.send({"cmd": "stop"})
    assert eng.finish(timeout=120) == 0, eng.stderr
    last = [e for e in eng.events if e["type"] == "step"][-1]["iter"]
    assert sorted(step_losses(run)) == list(range(max(step_losses(run)) + 1))  # no iteration missing
    assert ckpt_iter(run / "ckpt.pt") == last + 1 and not (run / UNDO).exists()


def test_hostile_undo_events_on_disk_are_dropped_or_ignored(tmp_path):
    from gpttui.run.metrics import read_events

    good = [{"type": "step", "iter": i, "t": 1.0 + i, "loss": 2.0, "lr": 1e-3, "dt_ms": 1.0,
             "tokens_per_s": 1.0, "mfu": 0.1, "grad_norm": 1.0} for i in range(10)]
    hostile = [{"type": "undo", "iter": 10, "t": 20.0, **fields} for fields in (
        {"available": False, "done": True, "to_iter": -3},
        {"available": False, "done": True, "to_iter": 2**70},
        {"available": False, "done": "yes", "to_iter": 2},
        {"available": False, "done": True, "to_iter": True},
        {"available": "no", "done": True, "to_iter": 2},
        {"available": False, "done": True, "to_iter": 2.5, "values": {"learning_rate": "fast"}},
        {"available": False, "done": True, "values": [1, 2]},
    )]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*good, *hostile]))
    history = RunHistory.from_metrics(path)
    assert [s.iter for s in history.steps] == list(range(10))  # no undo took the run back
    live = LiveRun()
    live.add_all(read_events(path))
    assert [p[0] for p in live.series.raw] == list(range(10))


def test_a_nan_after_a_learning_rate_change_names_the_old_values_to_resume_with(make_run, engines):
    from gpttui.engine.trainer import FAULT_NAN_ENV

    rd = make_run(eval_interval=1000)
    eng = engines(rd, env={FAULT_NAN_ENV: "300"})  # (the set lands well before, even on a busy machine)
    eng.wait_iter(5)
    assert eng.send("set", learning_rate=0.2, min_lr=0.02)
    eng.wait_event(lambda e: e["type"] == "undo", what="the undo point")
    assert eng.wait(60) == 1
    eng.pump()
    message = [e["message"] for e in eng.seen if e["type"] == "error"][-1]
    assert "non-finite loss nan at iter 300" in message
    assert f"resume with the old values, `gpttui train {rd} --learning_rate=0.003 --min_lr=0.0003`" in message
    assert (rd / UNDO).is_file()  # kept for the next engine to offer
