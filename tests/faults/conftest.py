"""Fixtures of the fault-injection suite (kit.py holds what the tests share)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from kit import SHAKESPEARE, TINY, Engine

from gpttui.data.metapkl import write_meta_pkl
from gpttui.run import config as C
from gpttui.run import directory, engine_state


@pytest.fixture(scope="session")
def char_data(tmp_path_factory) -> Path:
    """train.bin / val.bin / meta.pkl of the first 40k characters of tiny Shakespeare."""
    d = tmp_path_factory.mktemp("chardata")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:40_000]
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((stoi[c] for c in text), dtype=np.uint16, count=len(text))
    cut = int(len(ids) * 0.9)
    ids[:cut].tofile(d / "train.bin")
    ids[cut:].tofile(d / "val.bin")
    write_meta_pkl(d / "meta.pkl", chars)
    return d


@pytest.fixture
def make_run(tmp_path, char_data) -> Callable[..., Path]:
    """A run directory with config.toml for the tiny model; keyword arguments override fields."""

    def make(name: str = "run", **overrides: Any) -> Path:
        rd = tmp_path / name
        cfg = C.replace(C.TrainConfig(), **{**TINY, "data_dir": str(char_data), "out_dir": str(rd),
                                           **overrides})
        directory.prepare(cfg, rd, force=True)
        return rd

    return make


@pytest.fixture
def engines():
    """Start engines with engines(run_dir, ...); every engine still alive at the end is killed,
    including detached ones that outlived their parent (found through engine.json)."""
    started: list[Engine] = []
    dirs: list[Path] = []

    def start(run_dir: Path, overrides=(), env=None) -> Engine:
        e = Engine(run_dir, overrides, env)
        started.append(e)
        return e

    start.dirs = dirs  # tests that start engines another way register their run dirs here
    yield start
    for e in started:
        if e.alive:
            e.signal(signal.SIGKILL)
            e.wait(10)
    for d in {*(e.run_dir for e in started), *dirs}:
        info = engine_state.read_info(d)
        if info and engine_state.status(d).kind == "alive" and info.pid != os.getpid():
            try:
                os.kill(info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
