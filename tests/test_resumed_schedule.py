"""A nanoGPT log two processes wrote (`tee -a` across a resume that moved max_iters and the decay):
each stretch is read under the schedule its own process ran, in the forecast and in export's lr."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.analysis.opened_run import open_source
from gpttui.run.history import load_run

LOG = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "resumed_changed_schedule.txt"


def nanogpt_lr(it: int, decay_iters: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100) -> float:
    """nanoGPT's get_lr, as train.py has it."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_each_process_keeps_the_config_it_started_with():
    h = load_run(LOG)
    assert [s.start_iter for s in h.sessions] == [0, 200]
    first, second = (h.session_config(s) for s in h.sessions)
    assert (first.max_iters, first.lr_decay_iters) == (200, 200)
    assert (second.max_iters, second.lr_decay_iters) == (400, 400)


def test_the_forecast_note_names_both_schedules(capsys):
    assert cli.main(["doctor", str(LOG), "--until", "300", "--forecast-at", "400"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "cosine schedule (decay to iter 400, warm-up 100) from the config" in out
    assert "iters 0-200 ran under an earlier start's cosine schedule (decay to iter 200, warm-up 100)" in out


def test_export_gives_each_stretch_its_own_lr(tmp_path):
    out = tmp_path / "run.csv"
    assert cli.main(["export", str(LOG), "-o", str(out)]) == 0
    with out.open() as f:
        lrs = {int(r["iter"]): float(r["lr"]) for r in csv.DictReader(f) if r["kind"] == "step"}
    assert lrs[150] == pytest.approx(nanogpt_lr(150, 200))
    assert lrs[190] == pytest.approx(nanogpt_lr(190, 200))
    assert lrs[250] == pytest.approx(nanogpt_lr(250, 400))
    assert lrs[400] == pytest.approx(nanogpt_lr(400, 400))


def test_a_log_of_one_process_is_read_as_before(capsys):
    single = LOG.parent / "train_log_shakespeare_char_cpu_cos700_f32.txt"
    assert cli.main(["doctor", str(single)]) == 0
    assert "earlier start" not in capsys.readouterr().out


def test_the_lr_panel_of_gpttui_open_follows_each_stretch():
    run = open_source(LOG, colour=0)
    iters = [s.iter for s in run.history.steps][-len(run.live.lr):]
    lrs = dict(zip(iters, run.live.lr))
    assert lrs[190] == pytest.approx(nanogpt_lr(190, 200))   # near min_lr: the first process's decay ended at 200
    assert lrs[300] == pytest.approx(nanogpt_lr(300, 400))
