"""The config editor, driven with the pilot as a user would: type, look at the screen, apply.
(What the form's texts mean is tested directly in test_config_edit.py.)"""

import shutil

import pytest
from app_helpers import UNSET, ScreenHost, dashboard, flat, pilot_test, tiny_config, wait_for, written_run
from engine_kit import read_events
from textual import events
from textual.widgets import Button, Input

from gpttui.analysis.config_edit import ApplyAction
from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.run import config as C
from gpttui.run import live_set
from gpttui.screens.config import ConfigScreen, GroupValues

SIDE = "#side"


async def type_into(pilot, field: str, text: str) -> None:
    pilot.app.screen.edit(field)
    await pilot.pause()
    await pilot.press("end", "ctrl+u", *text)   # clear the old value, type the new
    await pilot.pause()


def field_value(app, field: str) -> str:
    """The text a field shows: in the editor when it is the edited one, else its line of values."""
    screen = app.screen
    return screen.editor.value if screen.editor.field == field else screen.texts[field]


def editing(app) -> str | None:
    """The field the user types into now (None: the focus is elsewhere)."""
    return app.screen.editor.field if app.screen.focused is app.screen.editor else None


# ---------------------------------------------------------------- the screen

@pilot_test
async def test_max_iters_typed_alone_warns_that_the_cosine_will_not_finish(seed):
    """The seed config decays to its max_iters 12,000; halving max_iters alone leaves the cosine at
    half way, and the editor says so until lr_decay_iters follows."""
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(140, 60)) as pilot:
        await pilot.pause()
        assert "lr_decay_iters" not in flat(app, SIDE)
        await type_into(pilot, "max_iters", "6000")
        assert ("lr_decay_iters 12,000 is past max_iters 6,000: the cosine ends with 53% of its decay to come "
                "(set lr_decay_iters = max_iters)") in flat(app, SIDE)
        await type_into(pilot, "lr_decay_iters", "6000")
        assert "is past max_iters" not in flat(app, SIDE)


@pilot_test
async def test_seed_config_shows_123m_then_40m_with_warning_then_refuses_n_head_5(seed):
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(140, 60)) as pilot:
        await pilot.pause()
        text = flat(app, SIDE)
        assert "number of parameters: 123.59M" in text
        assert "per iteration 524,288" in text
        assert "promises" not in text

        await type_into(pilot, "n_embd", "384")
        text = flat(app, SIDE)
        assert "number of parameters: 40.56M (was 123.59M)" in text
        assert "comment on line 16 promises ~125M parameters, but this config builds 40.56M" in text
        assert not app.screen.query_one("#new-run", Button).disabled

        await type_into(pilot, "n_head", "5")
        text = flat(app, SIDE)
        assert "✗ n_embd: 384 is not divisible by n_head=5" in text
        assert "✗ n_head ✗ n_embd" in flat(app, "#names")   # both marked in the form
        assert field_value(app, "n_head") == "5"
        field_help = flat(app, "#field-help")   # the focused field in full, its problem with it
        assert field_help.startswith("n_head (model): attention heads (must divide n_embd)")
        assert "✗ n_embd: 384 is not divisible by n_head=5" in field_help
        assert app.screen.query_one("#new-run", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.result is UNSET  # refused: the screen stays


@pilot_test
async def test_arrow_keys_walk_the_fields_and_show_their_help(seed):
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(120, 40)) as pilot:
        for key, char in [("down", None), ("down", None), ("3", "3"), ("8", "8"), ("4", "4")]:
            app.post_message(events.Key(key, char))   # one burst, as a fast typist or tmux sends it
        await pilot.pause()
        assert editing(app) == "n_embd"
        assert field_value(app, "n_embd") == "384"
        assert field_value(app, "n_layer") == "12"
        assert flat(app, "#inputs").startswith("12 12 384 0.0 False 0")   # the editor over n_embd's row
        assert "n_embd (model): embedding width · default 768" in flat(app, "#field-help")
        await pilot.press("up")
        assert editing(app) == "n_head"


@pilot_test
async def test_clicking_a_value_edits_that_field(seed):
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.click(GroupValues, offset=(2, 2))   # the model group's third row
        assert editing(app) == "n_embd"
        await pilot.press(*"384")
        assert field_value(app, "n_embd") == "384"
        assert "* n_embd" in flat(app, "#names")


@pilot_test
async def test_live_run_applies_live_fields_at_once(seed):
    app = ScreenHost(ConfigScreen(seed, live=True, current_iter=3000))
    async with app.run_test(size=(140, 60)) as pilot:
        await type_into(pilot, "max_iters", "24000")
        assert "ctrl+r applies these now, while the run trains: max_iters: 12000 → 24000" in flat(app, SIDE)
        assert str(app.screen.query_one("#apply", Button).label) == "Apply live"
        await pilot.press("ctrl+r")
        await pilot.pause()
    assert app.result.action is ApplyAction.LIVE
    assert app.result.changes == {"max_iters": 24000}
    assert app.result.config.max_iters == 24000


@pilot_test
async def test_live_run_restarts_for_batch_and_refuses_shape(seed):
    app = ScreenHost(ConfigScreen(seed, live=True, current_iter=3000))
    async with app.run_test(size=(140, 60)) as pilot:
        await type_into(pilot, "n_embd", "384")
        assert "✗ n_embd: the checkpoint's model has n_embd=768; a model's shape can't change" in flat(app, SIDE)
        assert app.screen.query_one("#apply", Button).disabled
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.result is UNSET

        await type_into(pilot, "n_embd", "768")
        await type_into(pilot, "batch_size", "4")
        assert "ctrl+r restarts the run from its checkpoint with: batch_size: 8 → 4" in flat(app, SIDE)
        await pilot.click("#apply")
        await pilot.pause()
    assert app.result.action is ApplyAction.RESTART and app.result.changes == {"batch_size": 4}


@pilot_test
async def test_live_run_refuses_what_the_engine_refuses_with_its_reason(seed):
    app = ScreenHost(ConfigScreen(seed, live=True, current_iter=3000))
    async with app.run_test(size=(140, 60)) as pilot:
        await type_into(pilot, "learning_rate", "3.0")
        with pytest.raises(C.ConfigError) as engine:   # what a live `set` of it gets from the engine
            live_set.apply(seed.config, {"learning_rate": 3.0}, live_set.RunLimits(3000))
        assert str(engine.value) == "learning_rate: must be in (0, 1], got 3"
        assert f"Can't apply to this run: ✗ {engine.value}" in flat(app, SIDE)
        assert "✗ learning_rate" in flat(app, "#names")
        assert "✗ must be in (0, 1], got 3" in flat(app, "#field-help")
        assert app.screen.query_one("#apply", Button).disabled
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.result is UNSET

        await type_into(pilot, "learning_rate", "0.001")
        assert "ctrl+r applies these now, while the run trains: learning_rate: 0.0003 → 0.001" in flat(app, SIDE)


@pilot_test
async def test_muon_states_which_parameters_go_to_muon_and_which_to_adamw(seed):
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(140, 60)) as pilot:
        assert "Muon on" not in flat(app, SIDE)
        await type_into(pilot, "optimizer", "muon")
        assert ("Optimizer Muon on the 48 2-D weights of the transformer blocks (84,934,656 parameters); "
                "AdamW on the embeddings, lm_head (tied to wte) and the 25 1-D gains/biases "
                "(39,439,104 parameters)") in flat(app, SIDE)


@pilot_test
async def test_save_as_toml_writes_the_edited_config(seed, tmp_path):
    target = tmp_path / "narrow.toml"
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(140, 60)) as pilot:
        await type_into(pilot, "n_embd", "384")
        app.screen.query_one("#path", Input).value = str(tmp_path / "narrow.py")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "save writes TOML: give a path ending in .toml" in flat(app, "#status")
        assert not (tmp_path / "narrow.py").exists()

        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert f"saved {target}" in flat(app, "#status")
        assert app.result is UNSET  # saving keeps the editor open
    saved = C.load(target).config
    assert saved == C.replace(seed.config, n_embd=384)


@pilot_test
async def test_open_a_toml_and_start_a_new_run_from_it(seed, tmp_path):
    other = tmp_path / "small.toml"
    C.save(C.replace(C.DEFAULTS, n_layer=4, n_head=4, n_embd=128, out_dir=str(tmp_path / "run-small")), other)
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(140, 60)) as pilot:
        path = app.screen.query_one("#path", Input)
        path.value = "/nonexistent/x.toml"
        path.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "/nonexistent/x.toml: no such config file" in flat(app, "#status")
        path.value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert field_value(app, "n_embd") == "128"
        assert f"opened {other}" in flat(app, "#status")
        await pilot.press("ctrl+n")
        await pilot.pause()
    assert app.result.action is ApplyAction.NEW_RUN
    assert app.result.config.n_embd == 128
    assert app.result.config.out_dir == str(tmp_path / "run-small")
    # changes are counted against the config the screen was opened with (the app applies them to it)
    assert C.replace(seed.config, **app.result.changes) == app.result.config


@pilot_test
async def test_new_run_refused_into_a_directory_holding_a_run(seed, tmp_path):
    (tmp_path / "out-fineweb").mkdir()
    (tmp_path / "out-fineweb" / "ckpt.pt").write_bytes(b"")
    app = ScreenHost(ConfigScreen(C.LoadedConfig(C.replace(seed.config, out_dir=str(tmp_path / "out-fineweb")))))
    async with app.run_test(size=(140, 60)) as pilot:
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "already holds a run; choose a new out_dir" in flat(app, "#status")
        assert app.result is UNSET
        await type_into(pilot, "out_dir", str(tmp_path / "out-narrow"))
        await pilot.press("ctrl+n")
        await pilot.pause()
    assert app.result.action is ApplyAction.NEW_RUN
    assert app.result.changes == {"out_dir": str(tmp_path / "out-narrow")}


@pilot_test
async def test_escape_cancels(seed):
    app = ScreenHost(ConfigScreen(seed))
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, "n_layer", "6")
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None


@pilot_test
async def test_fits_80x24_and_shows_problems_first(seed):
    app = ScreenHost(ConfigScreen(seed, live=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await type_into(pilot, "n_embd", "384")
        text = flat(app, SIDE)
        assert "n_embd: the checkpoint's model has n_embd=768" in text
        assert "promises ~125M parameters" in text


@pilot_test
async def test_keys_typed_right_after_c_land_in_the_editor_and_esc_discards_them(tmp_path, char_data):
    plan = make_plan(str(written_run(tmp_path, char_data)), [])
    plan.start = False
    app = GpttuiApp(plan)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not app.controller.loading and "finished" in flat(app, "#status"), 30, "the run")
        for _ in range(2):   # the first open builds the editor, the second finds it kept
            for key, char in [("c", "c"), ("3", "3")]:   # one burst: c, then typing before it is drawn
                app.post_message(events.Key(key, char))   # (the focused field's value is selected: replaced)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen), 10, "the editor")
            await wait_for(pilot, lambda: editing(app) == "n_layer" and field_value(app, "n_layer") == "3", 10,
                           "n_layer edited to 3")
            await wait_for(pilot, lambda: "* n_layer" in flat(app, "#names"), 5, "n_layer marked changed")
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is dashboard(app), 10, "back to the dashboard")
        assert app.ui_errors == []


# ---------------------------------------------------------------- in the real app, with a real engine

@pytest.mark.timeout(180)
@pilot_test
async def test_c_on_a_running_run_applies_live_then_restarts_for_batch_size(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    app = GpttuiApp(plan)
    ctl = app.controller

    async with app.run_test(size=(140, 50)) as pilot:
        await wait_for(pilot, lambda: ctl.live.iter >= 3, 60, "the engine to train")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen), 5, "the config editor")
        assert "Config of the run in" in flat(app, "#title")
        assert "number of parameters: 0.01M" in flat(app, SIDE)
        await type_into(pilot, "eval_interval", "7")
        assert "ctrl+r applies these now, while the run trains: eval_interval: 10 → 7" in flat(app, SIDE)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: read_events(plan.run_dir, "config"), 30, "the engine's config event")
        assert read_events(plan.run_dir, "config")[-1]["changes"] == {"eval_interval": 7}
        # the file has the engine's event before the UI has read it (a CI run reopened the editor between)
        await wait_for(pilot, lambda: ctl.config.eval_interval == 7, 30, "the UI to take the change")

        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen), 5, "the config editor")
        assert field_value(app, "eval_interval") == "7"  # the run's config, live changes in
        await type_into(pilot, "n_embd", "48")
        assert app.screen.query_one("#apply", Button).disabled
        await type_into(pilot, "n_embd", "32")
        await type_into(pilot, "batch_size", "2")
        assert "restarts the run from its checkpoint with: batch_size: 4 → 2" in flat(app, SIDE)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(h := read_events(plan.run_dir, "hello")) == 2
                       and ctl.live.iter > h[1]["start_iter"],
                       60, "the engine to restart from its checkpoint and train")
        restarted = read_events(plan.run_dir, "hello")[1]
        assert restarted["config"]["batch_size"] == 2 and restarted["start_iter"] > 0
        assert restarted["tokens_per_iter"] == 2 * 16
        await pilot.press("x")
        await pilot.pause(0.5)
        await pilot.press("y")
        await wait_for(pilot, lambda: not ctl.engine_alive, 30, "the engine to stop")
        assert app.ui_errors == []  # checked before the app shuts down


@pilot_test
async def test_a_data_meta_pkl_that_cannot_be_read_is_said_in_the_figures_place(tmp_path, char_data):
    """The sizes need the data's vocabulary; a damaged meta.pkl raised out of the editor."""
    data = tmp_path / "data"
    shutil.copytree(char_data, data)
    (data / "meta.pkl").write_bytes(bytes(range(256)))
    cfg = C.replace(C.DEFAULTS, data_dir=str(data), n_layer=2, n_head=2, n_embd=64, block_size=32)
    app = ScreenHost(ConfigScreen(C.LoadedConfig(cfg)))
    async with app.run_test(size=(140, 60)) as pilot:
        await wait_for(pilot, lambda: "meta.pkl" in flat(app, SIDE), 30, "the meta.pkl's error")
        await type_into(pilot, "n_layer", "3")      # a change recomputes the side: still said, no crash
        assert "meta.pkl" in flat(app, SIDE) and field_value(app, "n_layer") == "3"
