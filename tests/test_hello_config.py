"""A run's metrics.jsonl whose hello carries a config no run could have started with (edited by
hand, garbled, hostile): its config is dropped as any bad descriptive field is, so the doctor and
`gpttui open` show no figure built from it."""

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from app_helpers import flat, wait_for
from engine_kit import gpttui, make_char_data, prepare_run

from gpttui.app import GpttuiApp
from gpttui.screens.doctor import DoctorScreen
from gpttui.viewer import ReadOnlyRuns


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real 20-iteration run of the tiny character model."""
    root = tmp_path_factory.mktemp("hello")
    run = prepare_run(make_char_data(root / "data", 20_000), root / "run", max_iters=20, lr_decay_iters=20,
                      eval_interval=10)
    done = gpttui("train", str(run), "--init_from=scratch")
    assert done.returncode == 0, done.stderr
    return run


def edited(trained: Path, to: Path, keep_toml: bool = True, **config) -> Path:
    """A copy of the run whose hello's config holds `config`'s values and no parameter counts (so
    the doctor must build them from a config)."""
    shutil.copytree(trained, to)
    if not keep_toml:
        (to / "config.toml").unlink()
    lines = []
    for line in (to / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        ev = json.loads(line)
        if ev["type"] == "hello":
            ev["config"].update(config)
            del ev["params"]
        lines.append(json.dumps(ev))
    (to / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return to


def doctor(run: Path) -> str:
    done = gpttui("doctor", str(run))
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize("field,value", [("n_layer", -4), ("block_size", 0), ("batch_size", -8),
                                         ("vocab_size", -1), ("n_head", 3), ("learning_rate", -1.0),
                                         ("n_layer", "four"), ("max_iters", 10**30)])
def test_a_hello_config_breaking_a_config_rule_builds_no_figure(trained, tmp_path, field, value):
    """Without config.toml there is no other config: the parameters are unknown, not a count built
    from n_layer -4 (it said -0.05M) or from the defaults that would complete a config in part."""
    out = doctor(edited(trained, tmp_path / "run", keep_toml=False, **{field: value}))
    assert "parameters    not in this source" in out
    assert "1 line(s) read without fields that held bad values, the first: line " in out
    said = out.split(": hello config: expected a config gpttui train would take, not ")[1].splitlines()[0]
    assert field in said   # which field, as the config rule says it ('n_embd: 32 is not divisible by n_head=3')


def test_the_runs_config_toml_stands_for_a_hello_config_that_breaks_the_rules(trained, tmp_path):
    clean = doctor(trained).splitlines()
    out = doctor(edited(trained, tmp_path / "run", n_layer=-4)).splitlines()
    assert out[1] == clean[1] == "parameters    0.03M (nanoGPT's count, without position embeddings)"
    assert out[2] == clean[2]


def test_opens_doctor_panel_shows_no_parameter_count_built_from_the_hello_config(trained, tmp_path):
    run = edited(trained, tmp_path / "run", keep_toml=False, n_layer=-4)

    async def scenario() -> str:
        app = GpttuiApp(ReadOnlyRuns([run]))
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: "iter 20" in flat(app, "#status"), 30, "the run read")
            log = flat(app, "#log")   # the log pane says what was read without the bad field, and which
            assert "1 line read without fields that held bad values, the first: line" in log
            assert "hello config: expected a config gpttui train would take, not n_layer" in log
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DoctorScreen) and app.screen.report is not None, 60)
            await pilot.pause()
            return flat(app)

    shown = asyncio.run(scenario())
    assert "not in this source" in shown and "-0.05M" not in shown
