"""Fixtures any test may ask for by name. Helpers to import are in engine_kit.py (engine runs)
and app_helpers.py (the dashboard); the fault suite adds its own in faults/conftest.py."""

from __future__ import annotations

import queue
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine_kit import SHAKESPEARE, make_char_data

from gpttui.ipc.server import ControlServer, socket_path
from gpttui.run import config as C
from gpttui.run import engine_state

NANOGPT_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"

# A suite started with SIGINT ignored (a background job of a non-interactive shell, as some CI
# runners start it) passes that on to every process it starts, and the Ctrl+C tests would find
# their program deaf to it, as no terminal leaves it: give the processes Python's own handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def char_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.bin / val.bin / meta.pkl of tiny Shakespeare's start, made once per session
    (read-only: a test that changes data makes its own with engine_kit.make_char_data)."""
    return make_char_data(tmp_path_factory.mktemp("char_data"))


@pytest.fixture(scope="session")
def shakespeare_chars() -> list[str]:
    """The characters of all of tiny Shakespeare: nanoGPT's shakespeare_char vocabulary."""
    return sorted(set(SHAKESPEARE.read_text(encoding="utf-8")))


@pytest.fixture
def seed(tmp_path: Path) -> C.LoadedConfig:
    """The seed user's nanoGPT config (tests/fixtures/nanogpt/train_fineweb.py), loaded from a copy."""
    f = tmp_path / "train_fineweb.py"
    f.write_text((NANOGPT_FIXTURES / "train_fineweb.py").read_text())
    return C.load(f)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """tmpfs(name, size) mounts a tmpfs of `size` (mount's form: 64k, 3m) at tmp_path/name: a disk
    that really fills. Root only: where mount is refused the test is skipped, saying why.
    Every mount is lazily unmounted at the end (an engine may still hold a file on it)."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        mnt = tmp_path / name
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs here ({r.stderr.strip()}): a tmpfs needs root")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)



@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Path, engine_state.EngineStatus, ControlServer, queue.Queue]]:
    """An engine's status and control server on tmp_path, without any training: (run_dir, status,
    server, the queue the commands that reach it land in)."""
    es = engine_state.EngineStatus(tmp_path)
    es.acquire()
    commands: queue.Queue = queue.Queue()
    server = ControlServer(socket_path(tmp_path), commands.put)
    server.start()
    es.update(state="running", socket=str(server.path))
    es._write()
    yield tmp_path, es, server, commands
    server.close()
    es.close("stopped")
