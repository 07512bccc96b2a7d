"""Training batches from nanoGPT's uint16 `train.bin` / `val.bin`, random windows as nanoGPT.

The memmap is re-opened for every batch, as nanoGPT does, to avoid numpy's memmap leak.
Which windows are drawn is decided by torch's global RNG: the trainer seeds it per iteration,
so a resumed run draws the very batches the uninterrupted run would have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


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
