"""Helpers for the dashboard tests: a tiny character dataset and config, and pilot waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gpttui.data.metapkl import write_meta_pkl

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def tiny_data(root: Path) -> Path:
    """train.bin / val.bin / meta.pkl of a small character vocabulary (nanoGPT's format)."""
    d = root / "data"
    d.mkdir(parents=True, exist_ok=True)
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in TEXT], dtype=np.uint16)
    n = int(len(ids) * 0.9)
    ids[:n].tofile(d / "train.bin")
    ids[n:].tofile(d / "val.bin")
    write_meta_pkl(d / "meta.pkl", chars)
    return d


TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4,
            gradient_accumulation_steps=1, dropout=0.0, device="cpu", dtype="float32",
            compile=False, threads=1, eval_interval=10, eval_iters=2, log_interval=1,
            learning_rate=1e-3, min_lr=1e-4, warmup_iters=2, max_iters=100000,
            lr_decay_iters=100000, always_save_checkpoint=True, sample_on_checkpoint=False)


def tiny_config(root: Path, **changes: Any) -> Path:
    """A TOML config for a tiny model on tiny data, its run dir at root/run."""
    data = tiny_data(root)
    values = {**TINY, "out_dir": str(root / "run"), "data_dir": str(data), **changes}
    lines = [f"{k} = {_toml(v)}" for k, v in values.items()]
    path = root / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


async def wait_for(pilot, pred: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until pred() holds (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")


def run(coro) -> Any:
    return asyncio.run(coro)
