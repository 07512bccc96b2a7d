"""A data directory holding only a meta.pkl (someone's character vocabulary, its .bin files gone or
not made yet) is not overwritten by `gpttui prepare` nor by the dashboard's prepare screen unless
the user says so."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

from app_helpers import UNSET, ScreenHost, flat, wait_for
from engine_kit import SHAKESPEARE

from gpttui import cli
from gpttui.commands import EXIT_BAD_INPUT
from gpttui.data.metapkl import write_meta_pkl
from gpttui.screens.prepare_data import PrepareScreen

VOCAB = list("\n !abcdefghijklmnopqrstuvwxyz")   # not tiny Shakespeare's 65 characters


def stray_meta(tmp_path: Path) -> Path:
    out = tmp_path / "shakespeare_char"
    out.mkdir(parents=True)
    write_meta_pkl(out / "meta.pkl", VOCAB)
    return out


TEXT = SHAKESPEARE.read_text(encoding="utf-8")[:20_000]


def source(tmp_path: Path) -> Path:
    src = tmp_path / "input.txt"
    src.write_text(TEXT, encoding="utf-8")
    return src


def vocab(out: Path) -> int:
    return pickle.loads((out / "meta.pkl").read_bytes())["vocab_size"]


def test_prepare_refuses_a_lone_meta_pkl_without_force(tmp_path, capsys):
    out, src = stray_meta(tmp_path), source(tmp_path)
    before = (out / "meta.pkl").read_bytes()
    assert cli.main(["prepare", str(src), "--tokenizer", "char", "--out", str(out)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (f"error: {out}: holds meta.pkl not made by gpttui prepare (no meta.json "
                                       "of its); --force replaces it\n")
    assert [f.name for f in out.iterdir()] == ["meta.pkl"] and (out / "meta.pkl").read_bytes() == before
    assert cli.main(["prepare", str(src), "--tokenizer", "char", "--out", str(out), "--force"]) == 0
    assert vocab(out) == len(set(TEXT)) != len(VOCAB) and (out / "train.bin").exists()


def drive(out: Path, src: Path, given: bool) -> tuple[str, bytes, bool | None]:
    """The screen's text once it refused, meta.pkl as it then stood, and what the screen returned
    after Replace was pressed. `given`: the source comes with the screen (the demo's text), else typed."""
    async def scenario() -> tuple[str, bytes, bool | None]:
        app = ScreenHost(PrepareScreen(out, src if given else None, "char"))
        async with app.run_test(size=(120, 30)) as pilot:
            if not given:
                await wait_for(pilot, lambda: app.screen.query_one("#source"), 10, "the source field")
                app.screen.query_one("#source").value = str(src)
                app.screen.query_one("#tokenizer").value = "char"
                await pilot.press("enter")
            await wait_for(pilot, lambda: "holds meta.pkl" in flat(app), 30, "the refusal")
            shown, kept = f"{flat(app, '#info')} | {flat(app, '#force')}", (out / "meta.pkl").read_bytes()
            await pilot.click("#force")
            await wait_for(pilot, lambda: app.result is not UNSET, 60, "the data prepared")
            return shown, kept, app.result

    return asyncio.run(scenario())


def test_the_prepare_screen_says_the_refusal_and_offers_to_replace(tmp_path):
    for given in (True, False):
        out, src = stray_meta(tmp_path / str(given)), source(tmp_path)
        before = (out / "meta.pkl").read_bytes()
        shown, kept, result = drive(out, src, given)
        said = (f"{out}: holds meta.pkl not made by gpttui prepare (no meta.json of its); --force "
                "replaces it | Replace (--force)")
        assert shown.split() == said.split() or "".join(shown.split()) == "".join(said.split())   # (a long path wraps mid-word)
        assert kept == before
        assert result is True and vocab(out) == len(set(TEXT))
