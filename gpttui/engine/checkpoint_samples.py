"""The trainer's samples at checkpoints (config.sample_on_checkpoint): a few tokens from the
model in memory each time a checkpoint is written, appended to RUN_DIR/samples.jsonl, so the
dashboard can show how the text changes as the model learns.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from gpttui.data.tokenizer import for_data_dir
from gpttui.engine.generate import autocast_dtype, encode_prompt, generate
from gpttui.engine.model import GPT
from gpttui.run import layout, protocol
from gpttui.run.config import TrainConfig


def checkpoint_sample(model: GPT, cfg: TrainConfig, iter_num: int, val_loss: float | None, ckpt_path: Path,
                      ctx: AbstractContextManager[Any] | None = None) -> dict[str, Any]:
    """The trainer's hook: cfg.sample_tokens from cfg.sample_prompt with the model in memory,
    appended to samples.jsonl beside the checkpoint as {iter, t, val_loss, prompt, text, ckpt}. The seed is
    the same at every checkpoint, so what changes between samples is the weights. Torch's RNG,
    thread count and the model's train/eval mode are left as they were."""
    tok = for_data_dir(cfg.resolved_data_dir())
    ids = encode_prompt(tok, cfg.sample_prompt)
    device = model.lm_head.weight.device
    was_training = model.training
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # decoding gains little from a second thread, and on busy cores
        # (another run, the UI, a sampler) a second thread makes it many times slower
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            with ctx or nullcontext():
                new = list(generate(model, ids, cfg.sample_tokens, vocab_size=tok.vocab_size,
                                    cache_dtype=autocast_dtype(ctx)))
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
    record = {"iter": iter_num, "t": round(time.time(), 3), "val_loss": val_loss, "prompt": cfg.sample_prompt,
              "text": tok.decode(new), "ckpt": str(ckpt_path)}
    append_jsonl(ckpt_path.parent / layout.SAMPLES, record)
    return record


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One line, written with a single append (a reader never sees half of it)."""
    line = protocol.encode(record).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
