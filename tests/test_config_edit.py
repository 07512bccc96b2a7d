"""The config editor's logic without its screen: form texts checked as a config, what applying a
candidate to a run means, a new run's directory, and the figures a config implies."""

import pytest

from gpttui.analysis.config_edit import (
    ApplyAction,
    changed_fields,
    check_fields,
    figures,
    format_value,
    new_run_problem,
    plan_apply,
)
from gpttui.run import config as C
from gpttui.run import live_set, sizing, units


def engine_refusal(run: C.TrainConfig, values: dict, iter_num: int = 0) -> str:
    """What the engine answers a live `set` of `values` with (its one-line reason)."""
    with pytest.raises(C.ConfigError) as refused:
        live_set.apply(run, values, live_set.RunLimits(iter_num))
    return str(refused.value)


def test_format_value_round_trips_every_field(seed):
    for cfg in (C.DEFAULTS, seed.config, C.replace(C.DEFAULTS, out_dir=" odd'dir", sample_prompt="\n")):
        for name in C.FIELDS:
            assert C.parse_value(name, format_value(getattr(cfg, name))) == getattr(cfg, name), name


def test_check_marks_both_fields_of_a_shape_conflict(seed):
    texts = {n: format_value(getattr(seed.config, n)) for n in C.FIELDS}
    texts.update(n_embd="384", n_head="5", max_iters="lots")
    check = check_fields(texts, seed.config)
    assert not check.ok
    assert check.problems["n_embd"] == ["384 is not divisible by n_head=5"]
    assert check.problems["n_head"] == ["n_embd: 384 is not divisible by n_head=5"]
    assert check.problems["max_iters"] == ["expected int, got 'lots'"]
    assert check.config.max_iters == seed.config.max_iters  # the bad text leaves the old value


def test_plan_apply_live_restart_and_refusals(seed, tmp_path):
    run = seed.config
    assert plan_apply(run, C.replace(run, max_iters=24000, learning_rate=1e-4)).action == "live"
    plan = plan_apply(run, C.replace(run, batch_size=4, gradient_accumulation_steps=128, max_iters=20000))
    assert plan.action == "restart" and plan.changes == {
        "batch_size": 4, "gradient_accumulation_steps": 128, "max_iters": 20000}
    assert plan_apply(run, C.replace(run, dropout=0.1, device="cpu")).action == "restart"
    refused = plan_apply(run, C.replace(run, n_embd=384, n_head=6, block_size=512))
    assert refused.action is None
    assert [r.split(":")[0] for r in refused.refusals] == ["block_size", "n_head", "n_embd"]
    assert "can't change under a checkpoint" in refused.refusals[1]
    assert plan_apply(run, C.replace(run, vocab_size=50304)).action == "restart"  # 0 meant 50304 here
    char_data = tmp_path / "chars"
    char_data.mkdir()
    (char_data / "meta.json").write_text('{"vocab_size": 65}')
    other = plan_apply(run, C.replace(run, data_dir=str(char_data)))
    assert other.refusals == ["vocab_size: the checkpoint's model has a vocabulary of 50,304; this "
                              "config's (with its data) is 65 (start a new run instead)"]
    late = plan_apply(run, C.replace(run, max_iters=900), current_iter=1000)
    assert late.action is None and late.refusals == [engine_refusal(run, {"max_iters": 900}, 1000)]
    assert plan_apply(run, run).action is None


def test_apply_holds_changes_to_the_engines_live_rules(seed):
    run = seed.config
    # the engine takes max_iters at the run's iteration (it ends there): so does the editor
    assert plan_apply(run, C.replace(run, max_iters=1000), current_iter=1000).action is ApplyAction.LIVE
    steep = plan_apply(run, C.replace(run, learning_rate=3.0), current_iter=10)
    assert steep.action is None
    assert steep.refusals == [engine_refusal(run, {"learning_rate": 3.0})] == ["learning_rate: must be in (0, 1], got 3"]
    assert steep.problems == {"learning_rate": ["must be in (0, 1], got 3"]}
    # a restart continues the same run: the same ranges hold
    restart = plan_apply(run, C.replace(run, learning_rate=3.0, batch_size=4))
    assert restart.action is None and restart.refusals == steep.refusals
    # as in the engine, a problem the run already had is not held against a change
    loose = C.replace(run, weight_decay=50.0)
    assert plan_apply(loose, C.replace(loose, max_iters=24000)).action is ApplyAction.LIVE


def test_new_run_refuses_a_directory_that_holds_a_run(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.jsonl").write_text("")
    assert "already holds a run" in new_run_problem(C.replace(C.DEFAULTS, out_dir=str(tmp_path / "old")))
    assert new_run_problem(C.replace(C.DEFAULTS, out_dir=str(tmp_path / "new"))) is None


def test_changed_fields_lists_only_what_differs_with_the_new_values(seed):
    after = C.replace(seed.config, n_embd=384, max_iters=20000)
    assert changed_fields(seed.config, after) == {"n_embd": 384, "max_iters": 20000}
    assert changed_fields(seed.config, seed.config) == {}


def test_plan_actions_are_the_enum_the_app_takes(seed):
    assert plan_apply(seed.config, C.replace(seed.config, max_iters=24000)).action is ApplyAction.LIVE
    assert plan_apply(seed.config, C.replace(seed.config, batch_size=4)).action is ApplyAction.RESTART


def test_figures_state_the_muon_split_in_the_engines_words(seed):
    torch = pytest.importorskip("torch")
    from gpttui.engine.model import GPT, GPTConfig
    from gpttui.engine.optim import muon_summary

    for bias in (False, True):
        cfg = C.replace(C.DEFAULTS, optimizer="muon", n_layer=2, n_head=2, n_embd=32, block_size=16,
                        vocab_size=65, bias=bias)
        with torch.device("meta"):
            model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, bias=bias))
        split = sizing.muon_split(cfg, sizing.derive(cfg).params_total)
        assert muon_summary(model) == "optimizer muon: " + split.describe()
        assert split.describe() in " ".join(figures(cfg, cfg).plain.split())
    assert "Muon on" not in figures(seed.config, seed.config).plain   # adamw: no split to state


def test_figures_compare_with_the_base_and_say_when_memory_does_not_fit(seed):
    narrow = C.replace(seed.config, n_embd=384)
    text = " ".join(figures(narrow, seed.config).plain.split())
    assert "number of parameters: 40.56M (was 123.59M)" in text
    assert "per iteration 524,288" in text and "(was" not in text.split("per iteration 524,288")[1][:8]
    assert "per iteration: known once the run has measured one" in text
    timed = " ".join(figures(seed.config, seed.config, measured_ms_per_iter=3900.0).plain.split())
    assert "measured 3,900 ms/iter" in timed and f"max_iters take ≈ {units.human_duration(3.9 * 12000)}" in timed
    scaled = " ".join(figures(narrow, seed.config, measured_ms_per_iter=3900.0).plain.split())
    assert "this config ≈" in scaled and "(scaled by FLOPs)" in scaled
    tight = " ".join(figures(seed.config, seed.config, device_memory_bytes=2**30).plain.split())
    assert "does not fit: lower batch_size" in tight
    roomy = " ".join(figures(seed.config, seed.config, device_memory_bytes=2**50).plain.split())
    assert "does not fit" not in roomy and "device memory (0%)" in roomy
