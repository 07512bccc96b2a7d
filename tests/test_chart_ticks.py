"""Chart axes read as a person would label them: round steps, integers or K/M/B for iterations
and tokens, h/m/s for run time, a log axis said to be one (issue: `0.0e0 2.0e2 4.1e2`)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from gpttui.analysis.live import LiveRun
from gpttui.run.config import TrainConfig
from gpttui.run.history import load_run
from gpttui.widgets import ticks
from gpttui.widgets.loss_chart import LossChart
from gpttui.widgets.lr_chart import LRChart
from gpttui.widgets.overlay_chart import Curve, OverlayChart

LOGS = Path(__file__).resolve().parent / "fixtures" / "nanogpt"


def live_run(first: int, last: int, tokens_per_iter: int = 12288, s_per_iter: float = 0.05) -> LiveRun:
    live = LiveRun()
    live.add({"type": "hello", "t": 0.0, "start_iter": first, "tokens_per_iter": tokens_per_iter})
    for i in range(first, last):
        live.add({"type": "step", "iter": i, "t": (i - first) * s_per_iter, "tokens": i * tokens_per_iter,
                  "loss": 4 * math.exp(-i / 300) + 1.0 + 0.05 * math.sin(i)})
    return live


def x_tick_labels(chart_text: str) -> list[str]:
    """The labels on the line under the x axis (the one under the └───┬─── line)."""
    lines = chart_text.splitlines()
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[axis + 1].split()


def y_tick_labels(chart_text: str) -> list[str]:
    return [m.group(1) for line in chart_text.splitlines() if (m := re.match(r"\s*(\S+)┤", line))]


@pytest.mark.parametrize("first,last,expected", [
    (0, 1200, ["200", "400", "600", "800", "1000"]),
    (1164, 1200, ["1165", "1170", "1175", "1180", "1185", "1190", "1195"]),
    (0, 30_000, ["5K", "10K", "15K", "20K", "25K"]),
])
def test_iteration_ticks_are_round_integers_or_k(first, last, expected):
    chart = LossChart(live_run(first, last, s_per_iter=0.001))
    assert x_tick_labels(chart.build(80, 16).plain) == expected


def test_tokens_ticks_in_m_and_time_ticks_in_minutes_and_hours():
    chart = LossChart(live_run(0, 1201, s_per_iter=3.0))   # 14.7M tokens in an hour
    chart.x_axis = "tokens"
    text = chart.build(80, 16).plain
    assert x_tick_labels(text) == ["2M", "4M", "6M", "8M", "10M", "12M", "14M"] and "tokens seen" in text
    chart.x_axis = "time"
    text = chart.build(80, 16).plain
    assert x_tick_labels(text) == ["10m", "20m", "30m", "40m", "50m", "1h"] and "run time" in text


def test_loss_axis_has_round_values_and_log_y_is_labelled():
    chart = LossChart(live_run(0, 1200))
    text = chart.build(80, 16).plain
    assert y_tick_labels(text) == ["5", "4", "3", "2"] and "log" not in text
    chart.log_y = True
    text = chart.build(80, 16).plain
    assert y_tick_labels(text) == ["5", "3", "2"] and "loss (log scale)" in text
    chart.zoom = 200                                             # a narrow range: decimals it needs
    chart.log_y = False
    assert y_tick_labels(chart.build(80, 16).plain) == ["1.15", "1.10", "1.05"]


def test_overlay_of_two_nanogpt_logs_has_k_iterations_and_b_tokens():
    chart = OverlayChart([Curve("124m", load_run(LOGS / "train_log_fineweb_124m.txt"), 9)])
    text = chart.build(100, 20).plain
    assert x_tick_labels(text) == ["1K", "2K", "3K", "4K", "5K", "6K", "7K", "8K", "9K", "10K"]
    chart.x_axis, chart.log_y = "tokens", True
    text = chart.build(100, 20).plain
    assert x_tick_labels(text)[:4] == ["0.5B", "1B", "1.5B", "2B"] and "val loss (log scale)" in text


def test_lr_chart_ticks():
    cfg = TrainConfig(max_iters=6000, lr_decay_iters=6000, warmup_iters=200, learning_rate=6e-4, min_lr=6e-5)
    chart = LRChart(cfg, 0)
    plain = chart.build(80, 12).plain
    assert x_tick_labels(plain) == ["0", "1000", "2000", "3000", "4000", "5000", "6000"]
    assert y_tick_labels(plain) == ["6e-4", "4e-4", "2e-4", "0"]


@pytest.mark.parametrize("seconds,step,label", [
    (0, 10, "0"), (45, 5, "45s"), (90, 30, "1m30s"), (3600, 600, "1h"), (5400, 600, "1h30m"),
    (3605, 5, "1h00m05s"), (97200, 3600, "1d03h"), (58.5, 0.5, "58.5s"),
])
def test_time_labels(seconds, step, label):
    assert ticks.time_label(seconds, step) == label


def test_no_axis_ever_prints_e_notation_or_float_noise():
    for span in (3, 17, 99, 1234, 98_765, 3_210_987, 7.7e9):
        for target in (2, 5, 8):
            for labels in (ticks.count_ticks(span / 7, span, target).labels, ticks.time_ticks(0, span, target).labels):
                assert labels and not any("e" in t or re.search(r"\.\d{2,}", t) for t in labels), labels
    assert ticks.count_ticks(123_450, 123_500, 5).labels[:2] == ["123450", "123460"]   # not 123.45K
    assert ticks.count_ticks(0, 1.2e9, 6).labels[-2:] == ["1B", "1.2B"]
