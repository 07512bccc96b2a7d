"""Fixtures of the fault-injection suite (kit.py holds what the tests share; char_data comes from
tests/conftest.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest
from kit import TINY, Engine

from gpttui.run import config as C
from gpttui.run import directory, engine_state


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
