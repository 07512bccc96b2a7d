"""Helpers for the fault-injection suite: real engine processes on a tiny character model.

Every test starts `python -m gpttui.engine RUN_DIR` (n_layer=1, n_embd=32, block_size=16, one
CPU thread), breaks something from outside as a user would meet it, and asserts what survived:
files, iterations, losses, process state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from engine_kit import wait_for

from gpttui.ipc.process import EngineClient
from gpttui.run import protocol

TINY = dict(
    n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, gradient_accumulation_steps=1,
    dropout=0.0, bias=False, learning_rate=3e-3, min_lr=3e-4, warmup_iters=5, lr_decay_iters=100_000,
    max_iters=100_000, eval_interval=50, eval_iters=2, log_interval=1, device="cpu", dtype="float32",
    compile=False, threads=1, always_save_checkpoint=True, keep_checkpoints=2,
)


def events(run_dir: Path) -> list[dict]:
    """Every whole event in metrics.jsonl (a torn last line is skipped)."""
    out = []
    with open(run_dir / "metrics.jsonl", "rb") as f:
        for raw in f:
            try:
                out.append(protocol.decode_event(raw))
            except protocol.ProtocolError:
                pass
    return out


class Engine(EngineClient):
    """An engine child with the helpers the fault tests need; all its events are kept."""

    def __init__(self, run_dir: Path, overrides=(), env: dict[str, str] | None = None) -> None:
        super().__init__(run_dir, overrides, env={**os.environ, **(env or {})})
        self.seen: list[dict] = []
        self.log_lines: list[str] = []

    def pump(self) -> list[dict]:
        d = self.drain()
        self.seen += d.events
        self.log_lines += d.stderr
        return d.events

    def wait_event(self, pred: Callable[[dict], bool], timeout: float = 60.0, what: str = "an event") -> dict:
        def find() -> dict | None:
            done = not self.alive and self.finished_reading
            self.pump()
            hit = next((e for e in self.seen if pred(e)), None)
            if hit is None and done:
                raise AssertionError(f"engine exited ({self.returncode}) before {what}; "
                                     f"log tail: {self.stderr_tail(15)}")
            return hit

        return wait_for(find, timeout, what)

    def wait_iter(self, n: int, timeout: float = 60.0) -> dict:
        return self.wait_event(lambda e: e["type"] == "step" and e["iter"] >= n, timeout, f"iteration {n}")

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.wait(10)


def python(code: str, *args: str, **kw: Any) -> subprocess.Popen:
    """A helper process running `code` (the UI side, for tests that kill it)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def ckpt_iter(path: Path) -> int:
    from gpttui.engine import checkpoint

    return checkpoint.load(path)["iter_num"]
