"""Training batches from nanoGPT's uint16 `train.bin` / `val.bin`, random windows as nanoGPT.

The memmap is re-opened for every batch, as nanoGPT does, to avoid numpy's memmap leak.
Which windows are drawn is decided by torch's global RNG: the trainer seeds it per iteration,
so a resumed run draws the very batches the uninterrupted run would have.

Every token id is checked against the vocabulary when the data is opened, not only those a
batch happens to draw: one chunked max over the whole file, remembered per file (path, size,
mtime) in the user's cache directory, since the data directory may be read-only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from gpttui.fs import atomic

SCAN_CHUNK = 1 << 24  # tokens read at a time by the vocabulary check (32 MB of uint16)
CACHE_FILE = "token-max.json"
CACHE_ENTRIES = 256  # files remembered; the oldest are forgotten first


class DataError(ValueError):
    """A data problem, phrased as one line for the user."""


class Batches:
    """`get(split)` -> (x, y) int64 tensors of shape (batch_size, block_size) on `device`."""

    def __init__(self, data_dir: str | Path, block_size: int, batch_size: int, device: str,
                 vocab_size: int):
        self.data_dir = Path(data_dir)
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = device
        self.cuda = device.startswith("cuda")
        self.vocab_size = vocab_size
        self.paths = {split: self.data_dir / f"{split}.bin" for split in ("train", "val")}
        for split, path in self.paths.items():
            if not path.is_file():
                raise DataError(f"{path}: missing (expected uint16 token ids; run `gpttui prepare`)")
            n = path.stat().st_size // 2
            if n <= block_size:
                raise DataError(f"{path}: holds {n} tokens, fewer than block_size+1={block_size + 1}")
            check_vocab(path, vocab_size)

    def tokens(self, split: str) -> int | None:
        """Tokens in a split's file now (None if it can't be asked)."""
        try:
            return self.paths[split].stat().st_size // 2
        except OSError:
            return None

    def get(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = np.memmap(self.paths[split], dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - self.block_size, (self.batch_size,)).tolist()
        # one contiguous (B, T+1) array: x and y are its two overlapping views
        win = np.stack([data[i:i + self.block_size + 1] for i in ix]).astype(np.int64)
        if win.max() >= self.vocab_size:
            raise DataError(f"{self.paths[split]}: token id {int(win.max())} is outside the model's "
                            f"vocabulary of {self.vocab_size} (set vocab_size or check meta)")
        t = torch.from_numpy(win)
        x, y = t[:, :-1], t[:, 1:]
        if self.cuda:
            # pinned memory lets the host->GPU copy run asynchronously
            return (x.contiguous().pin_memory().to(self.device, non_blocking=True),
                    y.contiguous().pin_memory().to(self.device, non_blocking=True))
        return x.contiguous(), y.contiguous()


def check_vocab(path: Path, vocab_size: int) -> None:
    """Raise DataError naming the first token id in `path` that is >= vocab_size."""
    top = max_token(path)
    if top < vocab_size:
        return
    data = np.memmap(path, dtype=np.uint16, mode="r")
    for start in range(0, len(data), SCAN_CHUNK):
        bad = np.flatnonzero(data[start:start + SCAN_CHUNK] >= vocab_size)
        if bad.size:
            at = start + int(bad[0])
            raise DataError(f"{path}: token id {int(data[at])} at position {at:,} is outside the model's "
                            f"vocabulary of {vocab_size} (largest id in the file: {top}; set vocab_size "
                            f"or check meta.pkl)")


def max_token(path: Path) -> int:
    """The largest token id in a uint16 file: from the cache when the file is unchanged, else
    scanned chunk by chunk (bounded memory) and remembered."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = _read_cache()
    if isinstance(cache.get(key), int):
        return cache[key]
    data = np.memmap(path, dtype=np.uint16, mode="r")
    top = 0
    for start in range(0, len(data), SCAN_CHUNK):
        top = max(top, int(data[start:start + SCAN_CHUNK].max()))
    del data
    cache.pop(key, None)
    cache[key] = top
    _write_cache(dict(list(cache.items())[-CACHE_ENTRIES:]))
    return top


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/gpttui, else ~/.cache/gpttui."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpttui"


def _read_cache() -> dict:
    try:
        cache = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(cache: dict) -> None:
    """Best effort: a cache that can't be written costs one scan per start, nothing more."""
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        atomic.write_text(d / CACHE_FILE, json.dumps(cache))
    except OSError:
        pass
