"""nanoGPT-format checkpoints: {model, optimizer, model_args, iter_num, best_val_loss, config}.

Written atomically (gpttui.fs.atomic), so a crash or a full disk mid-write leaves the previous
checkpoint whole (numbered copies too). Read with `weights_only=True`. nanoGPT's own checkpoints load too: state-dict keys may
carry torch.compile's `_orig_mod.` prefix, `best_val_loss` may be a 0-d tensor, and `config`
may name a GPU dtype.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from gpttui.engine import durable
from gpttui.engine.model import MODEL_ARGS
from gpttui.fs import atomic

COMPILE_PREFIX = "_orig_mod."
REQUIRED = ("model", "model_args", "iter_num")


class CheckpointError(ValueError):
    """A checkpoint problem, phrased as one line for the user."""


def save(path: str | Path, ckpt: dict[str, Any]) -> None:
    """Write `ckpt` to `path` atomically; on any failure the old file is untouched."""
    with atomic.replacing(path) as f:
        torch.save(ckpt, f)
        durable.injected_save_delay()  # a test hook's window to kill us mid-write


def payload_bytes(obj: Any) -> int:
    """The bytes of the tensors in a (nested) checkpoint dict: about what its file needs on disk."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    return 0


def load(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint (ours or nanoGPT's), normalised: plain state-dict keys, float best_val_loss.
    `mmap`: tensors stay in the file until touched (a reader of the weights alone never pays
    for the optimizer state); a file in torch's legacy format is read whole instead."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no checkpoint there")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ckpt = torch.load(p, map_location=map_location, weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap or zipfile.is_zipfile(p):
                    raise
                ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several kinds for foreign or truncated files
        raise CheckpointError(f"{p}: not a readable checkpoint ({_reason(p, e)})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        have = ", ".join(sorted(ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{p}: not a nanoGPT checkpoint (expected keys {', '.join(REQUIRED)}; found {have})")
    ckpt["model"] = strip_prefix(ckpt["model"])
    ckpt["iter_num"] = int(ckpt["iter_num"])
    ckpt["best_val_loss"] = _as_float(ckpt.get("best_val_loss", math.inf))
    ckpt.setdefault("config", {})
    return ckpt


def _reason(p: Path, e: Exception) -> str:
    text = str(e)
    m = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text)  # torch 2.4-2.13 wordings
    if m:
        return f"it refers to {m.group(1)}, which safe (weights_only) loading refuses"
    if not zipfile.is_zipfile(p):
        return "not a torch.save file, or truncated"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"corrupt: {first[:120]}"


def _as_float(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Drop torch.compile's `_orig_mod.` prefix from state-dict keys, as nanoGPT's train.py does."""
    return {k[len(COMPILE_PREFIX):] if k.startswith(COMPILE_PREFIX) else k: v for k, v in state.items()}


def check_model_args(ckpt_args: dict[str, Any], want: dict[str, Any], path: str | Path) -> None:
    """Raise if the checkpoint's model shape disagrees with the config's, naming the field."""
    for name in MODEL_ARGS:
        if name in ckpt_args and name in want and ckpt_args[name] != want[name]:
            raise CheckpointError(
                f"{path}: {name} is {ckpt_args[name]!r} in the checkpoint but {want[name]!r} in the "
                f"config; a checkpoint fixes the model's shape (start a new run to change it)")


def keep_recent(path: Path, iter_num: int, keep: int, best_iter: int | None) -> None:
    """With keep > 1, also keep `ckpt_<iter>.pt` (a hard link to ckpt.pt where the file system
    allows): the `keep` most recent, and the one of the best val loss. With keep <= 1 only
    ckpt.pt remains, as in nanoGPT."""
    pattern = re.compile(rf"^{re.escape(path.stem)}_(\d+){re.escape(path.suffix)}$")
    if keep > 1:
        numbered = path.with_name(f"{path.stem}_{iter_num}{path.suffix}")
        numbered.unlink(missing_ok=True)
        try:
            os.link(path, numbered)
        except OSError:  # no hard links here: a copy, whole or not at all
            with open(path, "rb") as src, atomic.replacing(numbered) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    old = sorted((int(m.group(1)), f) for f in path.parent.iterdir() if (m := pattern.match(f.name)))
    doomed = old[:-keep] if keep > 1 else old
    for it, f in doomed:
        if it != best_iter or keep <= 1:
            f.unlink(missing_ok=True)
