"""nanoGPT's `python train.py --key=value ...` with no config file: `gpttui train` and
`gpttui launch` take nanoGPT's defaults plus the flags (data in data/<dataset> under the current
directory, the run in --out_dir); the demo is a named target, and torchrun's flags never decide."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_helpers import flat, quit_and_stop, record_notifications, run, wait_for
from engine_kit import TINY, gpttui, read_events

from gpttui import cli
from gpttui.app import GpttuiApp
from gpttui.commands import launch
from gpttui.commands.train import world_size
from gpttui.run import config as C

FLAGS = [f"--{k}={v}" for k, v in {**TINY, "max_iters": 20, "lr_decay_iters": 20, "eval_interval": 10,
                                   "dataset": "tiny_char"}.items()]


@pytest.fixture
def nanogpt_dir(tmp_path, char_data, monkeypatch) -> Path:
    """A working directory laid out as nanoGPT's: data/tiny_char/{train,val}.bin and meta.pkl."""
    shutil.copytree(char_data, tmp_path / "data" / "tiny_char")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_of(*argv: str):
    """What `gpttui launch ARGV` would open, resolved as the command does, before any app starts."""
    _, args = cli.parse(["launch", *argv])
    return launch.make_plan(args.target, args.overrides, world_size(args), force=args.force)


def test_train_with_flags_only_trains_into_out_dir(nanogpt_dir):
    r = gpttui("train", *FLAGS, "--out_dir=out-tiny", cwd=nanogpt_dir)
    assert r.returncode == 0, r.stderr
    assert "Overriding: dataset = 'tiny_char'" in r.stdout and "Overriding: out_dir = 'out-tiny'" in r.stdout
    assert "step 20: train loss" in r.stdout and "saving checkpoint to out-tiny" in r.stdout
    run_dir = nanogpt_dir / "out-tiny"
    assert (run_dir / "ckpt.pt").stat().st_size > 0
    cfg = C.load(run_dir).config
    assert (cfg.dataset, cfg.n_layer, cfg.max_iters) == ("tiny_char", 2, 20)
    assert cfg.data_dir == str(nanogpt_dir / "data" / "tiny_char")
    assert cfg.weight_decay == C.DEFAULTS.weight_decay  # an unflagged knob keeps nanoGPT's default
    assert max(e["iter"] for e in read_events(run_dir, "step")) == 19
    assert sorted(p.name for p in nanogpt_dir.iterdir()) == ["data", "out-tiny"]  # no demo, no ./out


def test_train_with_flags_and_no_data_names_the_directory_nanogpt_would_read(tmp_path):
    r = gpttui("train", "--n_layer=2", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == "error: data/openwebtext: data directory not found (set data_dir, or dataset for " \
                       "data/<dataset>; `gpttui prepare` makes one)\n"
    assert list(tmp_path.iterdir()) == []


def test_launch_opens_the_demo_only_when_asked_or_given_nothing(nanogpt_dir):
    demo_dir = nanogpt_dir / "gpttui-demo"
    bare = plan_of()
    assert (bare.note, bare.run_dir) == ("demo", demo_dir)
    named = plan_of("demo", "--max_iters=300")
    assert (named.note, named.run_dir, named.loaded.config.max_iters) == ("demo", demo_dir, 300)
    assert named.loaded.config.n_embd == 128  # the demo's own model, with the override on top
    # its cosine and evals fit the new length (max_iters alone would leave them at 5,000 and 250) ...
    assert (named.loaded.config.lr_decay_iters, named.loaded.config.eval_interval) == (300, 15)
    own = plan_of("demo", "--max_iters=300", "--lr_decay_iters=600", "--eval_interval=50")   # ... unless given
    assert (own.loaded.config.lr_decay_iters, own.loaded.config.eval_interval) == (600, 50)
    assert (bare.loaded.config.lr_decay_iters, bare.loaded.config.eval_interval) == (5000, 250)
    moved = plan_of("demo", "--out_dir=elsewhere/demo")   # the demo, its data included, where asked
    where = nanogpt_dir / "elsewhere" / "demo"
    assert (moved.note, moved.run_dir) == ("demo", where)
    assert (moved.loaded.config.out_dir, moved.loaded.config.data_dir) == (str(where), str(where / "data"))

    flagged = plan_of(*FLAGS, "--out_dir=out-x")
    assert flagged.note == "" and flagged.run_dir == Path("out-x")
    assert C.load(nanogpt_dir / "out-x").config.dataset == "tiny_char"  # config.toml written under its lock
    assert not demo_dir.exists()

    # torchrun's flags are not config flags: alone they still mean the demo, and with config flags never
    on_two = plan_of("--nproc_per_node=2")   # the demo on two processes: one micro-batch each
    assert on_two.note == "demo" and on_two.loaded.config.gradient_accumulation_steps == 2
    with pytest.raises(launch.LaunchError, match="3 does not divide among 2 processes .*--gradient_accumulation_steps=2"):
        plan_of("demo", "--nproc_per_node=2", "--gradient_accumulation_steps=3")
    two = plan_of("--nproc_per_node=2", *FLAGS, "--gradient_accumulation_steps=2", "--out_dir=out-2")
    assert two.note == "" and two.run_dir == Path("out-2")
    assert not demo_dir.exists()


def test_launch_with_flags_trains_the_flagged_run(nanogpt_dir):
    plan = plan_of(*FLAGS, "--max_iters=100000", "--lr_decay_iters=100000", "--out_dir=out-live")

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: ctl.live.iter >= 3, 60, "steps of the flagged run")
            await quit_and_stop(pilot, app, "enter")  # the highlighted default: stop and save

    run(go())
    run_dir = nanogpt_dir / "out-live"
    hello = read_events(run_dir, "hello")[-1]
    assert hello["config"]["dataset"] == "tiny_char" and hello["config"]["n_layer"] == 2
    assert read_events(run_dir, "state")[-1]["state"] == "stopped"
    assert not (nanogpt_dir / "gpttui-demo").exists()


def test_config_help_names_the_key_value_form(capsys):
    with pytest.raises(SystemExit):
        cli.main(["config", "--help"])
    assert "--key=value" in capsys.readouterr().out


def test_config_that_fails_validation_says_its_error_alone_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad5.py"
    bad.write_text("n_embd = 60\nn_head = 7\n")
    assert cli.main(["config", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: n_embd: 60 is not divisible by n_head=7\n"   # no report of a model that can't be built
    assert cli.main(["config", "--n_embd=60", "--n_head=7"]) == 2
    assert capsys.readouterr().err == "error: n_embd: 60 is not divisible by n_head=7\n"
    assert cli.main(["config", str(bad), "--json"]) == 2    # the object still comes, errors in it
    assert json.loads(capsys.readouterr().out)["errors"] == ["n_embd: 60 is not divisible by n_head=7"]
    good = tmp_path / "good.py"
    good.write_text("n_embd = 64\nn_head = 4\n")
    assert cli.main(["config", str(good)]) == 0 and "number of parameters" in capsys.readouterr().out


def test_launch_says_the_configs_warnings_once_the_dashboard_is_up(nanogpt_dir):
    """A cosine left decaying past max_iters is said at launch too, as gpttui config and train say it."""
    plan = plan_of(*FLAGS, "--lr_decay_iters=200", "--out_dir=out-w")
    said = ("lr_decay_iters 200 is past max_iters 20: the cosine ends with 99% of its decay to come "
            "(set lr_decay_iters = max_iters)")
    assert plan.warnings == [said]
    assert plan_of(*FLAGS, "--out_dir=out-fine").warnings == []
    assert plan_of("demo", "--max_iters=2000").warnings == []   # the demo's cosine follows, unless told otherwise
    assert "past max_iters 2,000" in plan_of("demo", "--max_iters=2000", "--lr_decay_iters=5000").warnings[0]
    plan.start = False

    async def scenario():
        app = GpttuiApp(plan)
        notes = record_notifications(app)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_for(pilot, lambda: "lr_decay_iters 200 is past max_iters 20" in flat(app), 10, "the warning")
            assert notes == [said]
    run(scenario())


def test_an_override_whose_value_has_a_space_is_an_override_not_a_config_path(nanogpt_dir, capsys):
    """argparse reads a token with a space in it as positional: it was taken for the config file."""
    assert cli.main(["config", "--wandb_run_name=my run", "--out_dir=my runs/ünï"]) == 0
    out = capsys.readouterr().out
    assert "wandb_run_name = 'my run'" in out and "out_dir = 'my runs/ünï'" in out
    assert cli.main(["train", *FLAGS, "--max_iters=2", "--out_dir=my runs/first"]) == 0
    assert (nanogpt_dir / "my runs" / "first" / "ckpt.pt").is_file()
    assert cli.main(["config", "--n_layer=2", "stray word"]) == 2   # a positional with a space is still the config
    assert "stray word: no such config file" in capsys.readouterr().err


def test_launch_says_a_refused_field_in_one_line_as_train_does(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["launch", "demo", "--max_iters=-1"]) == 2   # lr_decay_iters follows it: not said again
    assert capsys.readouterr().err == "error: max_iters: must be >= 0, got -1\n"
    assert list(tmp_path.iterdir()) == []
