"""Shared helpers of the engine tests: character data from tiny Shakespeare, tiny configs and
models, nanoGPT's own model.py, and an engine child process whose events are read live.
(conftest.py turns the data into session fixtures.)"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from gpttui.data.metapkl import write_meta_pkl
from gpttui.run import config as C
from gpttui.run import directory

SHAKESPEARE = Path(__file__).resolve().parents[1] / "gpttui" / "assets" / "tinyshakespeare.txt"
CHAR_DATA_CHARS = 100_000  # what make_char_data takes from tiny Shakespeare unless told
NANOGPT_MODEL = Path(__file__).resolve().parent / "fixtures" / "nanogpt_model.py"

TINY = dict(
    n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=8, gradient_accumulation_steps=1,
    dropout=0.0, bias=False, learning_rate=3e-3, min_lr=3e-4, warmup_iters=5, lr_decay_iters=200,
    max_iters=200, eval_interval=20, eval_iters=4, log_interval=1, device="cpu", dtype="float32",
    compile=False, threads=1, peak_flops=1e11,
)


# model_args of a tiny character model (tiny Shakespeare's 65 characters) and a tiny GPT-2-vocabulary one
CHAR_ARGS = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, bias=False, vocab_size=65, dropout=0.0)
BPE_ARGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=32, bias=False, vocab_size=50304, dropout=0.0)


def nanogpt() -> ModuleType:
    """nanoGPT's model.py (GPT, GPTConfig, generate, configure_optimizers), kept verbatim."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", NANOGPT_MODEL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_char_data(d: Path, n_chars: int = CHAR_DATA_CHARS) -> Path:
    """uint16 train.bin / val.bin (90/10) and nanoGPT's meta.pkl of tiny Shakespeare's start."""
    d.mkdir(parents=True, exist_ok=True)
    text = SHAKESPEARE.read_text(encoding="utf-8")[:n_chars]
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((stoi[c] for c in text), dtype=np.uint16, count=len(text))
    cut = int(len(ids) * 0.9)
    ids[:cut].tofile(d / "train.bin")
    ids[cut:].tofile(d / "val.bin")
    write_meta_pkl(d / "meta.pkl", chars)
    return d


def tiny_config(data_dir: Path, run_dir: Path, **over: Any) -> C.TrainConfig:
    return C.build({**TINY, "data_dir": str(data_dir), "out_dir": str(run_dir), **over})


def write_py_config(path: Path, data: Path, out: Path, **over: Any) -> Path:
    """A nanoGPT-style config.py for `gpttui train`: the tiny model, 20 iterations, eval every 10."""
    values = {**TINY, "data_dir": str(data), "out_dir": str(out), "max_iters": 20,
              "lr_decay_iters": 20, "eval_interval": 10, **over}
    path.write_text("# a nanoGPT-style config\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items()))
    return path


def prepare_run(data_dir: Path, run_dir: Path, **over: Any) -> Path:
    directory.prepare(tiny_config(data_dir, run_dir, **over), run_dir, force=True)
    return run_dir


def gpttui(*args: str, cwd: Path | None = None, stdin: str = "", wrap: tuple[str, ...] = (),
           env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m gpttui ARGS` run to its end as a user's shell would (`wrap` goes before it, e.g.
    setpriv; `env` adds to this process's environment), its output captured as text."""
    return subprocess.run([*wrap, sys.executable, "-m", "gpttui", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **env} if env else None)


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """pred()'s first true value, polled until `timeout` (then an AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_events(run_dir: Path, type_: str | None = None) -> list[dict]:
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
        evs = [json.loads(line) for line in f if line.strip()]
    return [e for e in evs if type_ is None or e["type"] == type_]


def step_losses(run_dir: Path) -> dict[int, float]:
    """iter -> loss of the latest step event for that iteration."""
    return {e["iter"]: e["loss"] for e in read_events(run_dir, "step")}


class EngineProc:
    """`python -m gpttui.engine RUN_DIR` with stdin/stdout pipes; events collected on a thread."""

    def __init__(self, run_dir: Path, *overrides: str, env: dict[str, str] | None = None,
                 launcher: tuple[str, ...] = ("-m", "gpttui.engine")):
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, str(run_dir), *overrides],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, text=True)
        self.events: list[dict] = []
        self.inbox: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            ev = json.loads(line)
            self.events.append(ev)
            self.inbox.put(ev)

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def send(self, obj: dict | str) -> None:
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        """The next event (from now on) matching `pred`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; stderr: {self.stderr[-2000:]}")
            try:
                ev = self.inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.inbox.empty():
                    time.sleep(0.2)
                    if self.inbox.empty():
                        raise AssertionError(f"engine exited {self.proc.returncode}; stderr: {self.stderr[-2000:]}")
                continue
            if pred(ev):
                return ev

    def wait_step(self, n: int, timeout: float = 60.0) -> dict:
        return self.wait_for(lambda e: e["type"] == "step" and e["iter"] >= n, timeout)

    def wait_state(self, state: str, timeout: float = 60.0) -> dict:
        return self.wait_for(lambda e: e["type"] == "state" and e["state"] == state, timeout)

    def finish(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.1)  # let the reader threads take the last lines
        return rc
