"""Preparing a run directory before the engine starts: pure Python, no torch.

`prepare` checks everything that can be checked without torch (the config, the data, whether
a run would be clobbered) and writes RUN_DIR/config.toml atomically, so `gpttui train` and the
UI fail fast with one clear line instead of a traceback from the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpttui import config as C

CONFIG = "config.toml"
CKPT = "ckpt.pt"
METRICS = "metrics.jsonl"
ENGINE_LOG = "engine.log"


class RunDirError(ValueError):
    """A problem with the run directory or its data, phrased as one line for the user."""


@dataclass
class DataInfo:
    data_dir: Path
    train_tokens: int
    val_tokens: int
    vocab_size: int | None   # from meta.json / meta.pkl, if there


def check_data(cfg: C.TrainConfig) -> DataInfo:
    """The data directory holds train.bin and val.bin with more than block_size tokens each."""
    d = cfg.resolved_data_dir()
    if not d.is_dir():
        hint = "set data_dir, or dataset for data/<dataset>" if not cfg.data_dir else "check data_dir"
        raise RunDirError(f"{d}: data directory not found ({hint}; `gpttui prepare` makes one)")
    tokens = {}
    for split in ("train", "val"):
        p = d / f"{split}.bin"
        if not p.is_file():
            raise RunDirError(f"{p}: missing (expected uint16 token ids, as nanoGPT's prepare.py writes)")
        size = p.stat().st_size
        if size % 2:
            raise RunDirError(f"{p}: {size} bytes is not a whole number of uint16 tokens")
        tokens[split] = size // 2
        if tokens[split] <= cfg.block_size:
            raise RunDirError(f"{p}: holds {tokens[split]} tokens, but block_size={cfg.block_size} "
                              f"needs at least {cfg.block_size + 1} (lower block_size or add data)")
    vocab = C.data_vocab_size(d)
    if vocab and cfg.vocab_size and cfg.vocab_size < vocab:
        raise RunDirError(f"vocab_size: {cfg.vocab_size} is smaller than the data's vocabulary of {vocab}")
    return DataInfo(d, tokens["train"], tokens["val"], vocab)


def prepare(cfg: C.TrainConfig, run_dir: str | Path | None = None, force: bool = False) -> tuple[C.TrainConfig, DataInfo]:
    """Validate `cfg`, check its data and the run directory, write RUN_DIR/config.toml.

    Returns the config as written: out_dir is the run directory and data_dir is absolute, so
    the engine finds the data whatever its working directory.
    """
    errors = C.validate(cfg)
    if errors:
        raise RunDirError(errors[0] if len(errors) == 1 else "; ".join(errors))
    rd = Path(run_dir if run_dir is not None else cfg.out_dir)
    info = check_data(cfg)
    cfg = C.replace(cfg, out_dir=str(rd), data_dir=str(info.data_dir.resolve()))
    ckpt = rd / CKPT
    if cfg.init_from == "resume" and not ckpt.is_file():
        raise RunDirError(f"{ckpt}: no checkpoint to resume from (use --init_from=scratch to start)")
    if cfg.init_from == "scratch" and ckpt.is_file() and not force:
        raise RunDirError(f"{rd}: already holds a run (ckpt.pt); resume it with `gpttui train {rd}`, "
                          f"or choose another out_dir")
    if rd.exists() and not rd.is_dir():
        raise RunDirError(f"{rd}: exists and is not a directory")
    rd.mkdir(parents=True, exist_ok=True)
    write_config(cfg, rd)
    return cfg, info


def write_config(cfg: C.TrainConfig, run_dir: str | Path) -> None:
    """RUN_DIR/config.toml, atomically: a temporary file, fsync, rename."""
    p = Path(run_dir) / CONFIG
    tmp = p.with_name(f".{CONFIG}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(C.to_toml(cfg))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
