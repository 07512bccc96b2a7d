"""`gpttui config` on an eval_only config (nanoGPT's config/eval_gpt2.py): the run evaluates once
and trains nothing, so the figures are an evaluation's, not a training run's."""

from __future__ import annotations

import json
from pathlib import Path

from gpttui.cli import main

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "configs"
EVAL_GPT2 = str(CONFIGS / "eval_gpt2.py")


def test_eval_only_config_says_it_evaluates_once_and_gives_no_training_figures(capsys):
    assert main(["config", EVAL_GPT2]) == 0
    out = capsys.readouterr().out
    assert "number of parameters: 123.65M" in out
    assert "eval_only: trains nothing; evaluates the 'gpt2' weights once and exits" in out
    # eval_iters 500 batches of 8 x 1024 tokens, on train and on val
    assert "tokens per evaluation: 8,192,000 = eval_iters 500 batches of 8 x 1024 tokens on each of train and val" in out
    memory = next(line for line in out.splitlines() if line.startswith("evaluation memory"))
    assert "(no grads or optimizer state)" in memory and "AdamW" not in memory
    for training_only in ("tokens per iteration", "tokens at max_iters", "tokens/parameter", "training memory"):
        assert training_only not in out


def test_eval_only_json_adds_the_evaluation_figures_and_keeps_every_key(capsys):
    assert main(["config", EVAL_GPT2, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    derived = out["derived"]
    assert out["config"]["eval_only"] is True
    assert derived["tokens_per_eval"] == 2 * 500 * 8 * 1024
    mem = derived["eval_memory_bytes"]
    assert set(mem) == {"weights", "activations", "total"}
    assert mem["weights"] == derived["memory_bytes"]["weights"] and mem["total"] < derived["memory_bytes"]["total"]
    assert {"tokens_per_iter", "tokens_at_max_iters", "tokens_per_param", "memory_bytes"} <= set(derived)


def test_eval_only_is_not_warned_of_a_schedule_it_never_follows(capsys):
    assert main(["config", EVAL_GPT2, "--max_iters=100", "--warmup_iters=2000"]) == 0
    assert "warning" not in capsys.readouterr().out
    assert main(["config", EVAL_GPT2, "--max_iters=100", "--warmup_iters=2000", "--eval_only=False"]) == 0
    assert "warning: warmup_iters 2,000 is past max_iters 100" in capsys.readouterr().out


def test_a_training_config_keeps_its_training_figures(capsys):
    assert main(["config", str(CONFIGS / "train_shakespeare_char.py")]) == 0
    out = capsys.readouterr().out
    assert "tokens at max_iters (5,000)" in out and "training memory (estimate)" in out
    assert "eval_only" not in out.split("number of parameters")[1]
