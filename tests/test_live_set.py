"""The rules of a live `set` (run/live_set.py), shared by the engine and the config editor."""

from __future__ import annotations

import pytest

from gpttui.run import config as C
from gpttui.run import live_set

CFG = C.replace(C.TrainConfig(), learning_rate=6e-4, min_lr=6e-5, max_iters=5000, lr_decay_iters=5000,
                warmup_iters=100, eval_iters=200, batch_size=12, block_size=64)
AT_120 = live_set.RunLimits(iter_num=120, val_tokens=100_000)


def refused(values, limits=AT_120):
    with pytest.raises(C.ConfigError) as e:
        live_set.apply(CFG, values, limits)
    return str(e.value)


@pytest.mark.parametrize("values, said", [
    ({"learning_rate": 1e308}, "learning_rate: must be in (0, 1], got 1e+308"),
    ({"learning_rate": float("inf")}, "learning_rate: must be a finite number"),
    ({"learning_rate": float("nan")}, "learning_rate: must be a finite number"),
    ({"learning_rate": 0.0}, "learning_rate: must be > 0"),
    ({"min_lr": 1.0}, "min_lr: 1.0 is above learning_rate=0.0006"),
    ({"min_lr": -1e-5}, "min_lr: must be >= 0"),
    ({"eval_iters": 1e12}, "eval_iters: 1,000,000,000,000 batches per split would stall training"),
    ({"eval_iters": 1.5}, "eval_iters: expected int, got float 1.5"),
    ({"eval_iters": 0}, "eval_iters: must be a positive integer"),
    ({"max_iters": 100}, "max_iters: 100 is behind the run, which is at iter 120"),
    ({"max_iters": 10**30}, "max_iters: 1,000,000,000,000,000,000,000,000,000,000 is beyond any run"),
    ({"eval_interval": True}, "eval_interval: expected int, got bool True"),
    ({"weight_decay": 1e9}, "weight_decay: must be in [0, 10]"),
    ({"keep_checkpoints": 10**6}, "keep_checkpoints: must be at most 1000"),
    ({"warmup_iters": 6000}, "warmup_iters: 6000 is beyond lr_decay_iters=5000"),
    ({"n_layer": 4}, "n_layer: cannot change while training"),
    ({"learnig_rate": 1e-3}, "learnig_rate: cannot change while training"),
])
def test_destructive_values_are_refused_naming_the_field(values, said):
    assert said in refused(values)


def test_evaluation_is_bounded_by_what_val_bin_holds():
    tiny_val = live_set.RunLimits(iter_num=120, val_tokens=1000)
    assert "eval_iters: 9,000 batches of 12 would read val.bin's 1,000 tokens over 100 times (at most 7,800)" \
        in refused({"eval_iters": 9000}, tiny_val)
    assert live_set.apply(CFG, {"eval_iters": 7800}, tiny_val)[1] == {"eval_iters": 7800}


def test_every_refused_field_is_named_at_once():
    message = refused({"learning_rate": 2.0, "eval_iters": 1e12})
    assert "learning_rate: must be in (0, 1]" in message and "eval_iters: 1,000,000,000,000" in message


def test_sound_values_apply_and_say_what_changed():
    new, changes = live_set.apply(CFG, {"learning_rate": 1e-3, "min_lr": 1e-4, "max_iters": 120,
                                        "eval_iters": 100.0, "warmup_iters": 100}, AT_120)
    assert changes == {"learning_rate": 1e-3, "min_lr": 1e-4, "max_iters": 120, "eval_iters": 100}
    assert type(new.eval_iters) is int and new.learning_rate == 1e-3
    assert live_set.LR_FIELDS & changes.keys() == {"learning_rate", "min_lr"}


def test_a_problem_the_running_config_already_had_is_not_held_against_a_set():
    big_eval = C.replace(CFG, eval_iters=20_000)  # the config file said so: the run started with it
    new, changes = live_set.apply(big_eval, {"learning_rate": 1e-3}, AT_120)
    assert changes == {"learning_rate": 1e-3}
    with pytest.raises(C.ConfigError, match="eval_iters: 30,000"):
        live_set.apply(big_eval, {"eval_iters": 30_000}, AT_120)


def test_the_editor_gets_the_same_rules_without_a_run():
    assert live_set.problems(CFG) == []
    assert live_set.problems(C.replace(CFG, learning_rate=3.0, eval_iters=50_000)) == [
        "learning_rate: must be in (0, 1], got 3",
        "eval_iters: 50,000 batches per split would stall training in every evaluation (at most 10,000)"]


def test_limits_outside_the_engine_measure_val_bin_as_the_engine_does(tmp_path):
    (tmp_path / "val.bin").write_bytes(b"\0" * 2000)   # 1,000 uint16 tokens
    limits = live_set.limits_of(C.replace(CFG, data_dir=str(tmp_path)), 120)
    assert limits == live_set.RunLimits(iter_num=120, val_tokens=1000)
    assert "would read val.bin's 1,000 tokens" in refused({"eval_iters": 9000}, limits)
    assert live_set.limits_of(C.replace(CFG, data_dir=str(tmp_path / "none")), 0).val_tokens is None
