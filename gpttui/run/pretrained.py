"""Pretrained GPT-2 as a starting point (`init_from = 'gpt2' | 'gpt2-medium' | ... | PATH`), without torch.

nanoGPT downloads OpenAI's weights through `transformers`; gpttui reads a Hugging Face
`model.safetensors` already on disk instead: the one in the Hugging Face cache (where nanoGPT's
`from_pretrained` left it) or one the user names with `--init_from=PATH`. This module knows the
model shapes (GPT-2's four sizes, or a checkpoint's config.json) and where the weights are; the
engine's pretrained.py loads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# nanoGPT's from_pretrained: n_layer, n_head and n_embd by model type; every GPT-2 has these.
GPT2_SIZES = {
    "gpt2": (12, 12, 768),          # 124M
    "gpt2-medium": (24, 16, 1024),  # 350M
    "gpt2-large": (36, 20, 1280),   # 774M
    "gpt2-xl": (48, 25, 1600),      # 1558M
}
GPT2_VOCAB, GPT2_POSITIONS = 50257, 1024
WEIGHTS = "model.safetensors"
HF_CONFIG = "config.json"


class PretrainedError(ValueError):
    """No usable pretrained weights or shape; phrased as one line for the user."""


def is_gpt2(init_from: str) -> bool:
    return init_from in GPT2_SIZES


def is_path(init_from: str) -> bool:
    """`init_from` names weights on disk (not scratch, resume or a GPT-2 size)."""
    if init_from in ("scratch", "resume") or is_gpt2(init_from) or not init_from:
        return False
    return init_from.endswith(".safetensors") or "/" in init_from or os.sep in init_from or Path(init_from).is_dir()


def is_pretrained(init_from: str) -> bool:
    return is_gpt2(init_from) or is_path(init_from)


def _hf_cache_dirs() -> list[Path]:
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return [Path(env)]
    home = os.environ.get("HF_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return [base / "hub"]


def download_hint(name: str) -> str:
    return (f"download {WEIGHTS} and {HF_CONFIG} from https://huggingface.co/openai-community/{name} "
            f"into a directory DIR, then train with --init_from=DIR")


def weights_file(init_from: str) -> Path:
    """The model.safetensors `init_from` stands for; PretrainedError (one line) when there is none."""
    if is_gpt2(init_from):
        for hub in _hf_cache_dirs():
            for repo in (f"models--{init_from}", f"models--openai-community--{init_from}"):
                found = sorted((hub / repo / "snapshots").glob(f"*/{WEIGHTS}"))
                if found:
                    return found[-1]
        raise PretrainedError(f"init_from: no local weights for {init_from!r} (gpttui does not download them; "
                              f"looked in {_hf_cache_dirs()[0]}): {download_hint(init_from)}")
    p = Path(init_from).expanduser()
    f = p / WEIGHTS if p.is_dir() else p
    if not f.is_file():
        raise PretrainedError(f"init_from: {f}: no such file (expected a Hugging Face GPT-2 {WEIGHTS}, "
                              f"or the directory holding it)")
    return f


def model_shape(init_from: str) -> dict[str, Any]:
    """The model fields a pretrained start fixes: n_layer, n_head, n_embd, bias, vocab_size and
    the positions it has (block_size may be cropped below them, never raised above)."""
    if is_gpt2(init_from):
        n_layer, n_head, n_embd = GPT2_SIZES[init_from]
        return {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "bias": True,
                "vocab_size": GPT2_VOCAB, "block_size": GPT2_POSITIONS}
    config = weights_file(init_from).parent / HF_CONFIG
    try:
        hf = json.loads(config.read_text(encoding="utf-8"))
        return {"n_layer": int(hf["n_layer"]), "n_head": int(hf["n_head"]), "n_embd": int(hf["n_embd"]),
                "bias": True, "vocab_size": int(hf["vocab_size"]),
                "block_size": int(hf.get("n_positions") or hf["n_ctx"])}
    except FileNotFoundError:
        raise PretrainedError(f"init_from: {config}: missing; the model's shape (n_layer, n_head, n_embd) "
                              f"is read from the Hugging Face {HF_CONFIG} beside {WEIGHTS}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PretrainedError(f"init_from: {config}: not a GPT-2 {HF_CONFIG} ({type(e).__name__}: {e})") from None


def shaped(values: dict[str, Any]) -> dict[str, Any]:
    """Config values with the pretrained model's shape in place of the configured one, as
    nanoGPT's train.py does (dropout stays the config's; block_size may crop the positions)."""
    init_from = values.get("init_from", "scratch")
    if not isinstance(init_from, str) or not is_pretrained(init_from):
        return values
    shape = model_shape(init_from)
    positions = shape.pop("block_size")
    block = values.get("block_size", min(GPT2_POSITIONS, positions))  # (TrainConfig's default); more: block_error
    return {**values, **shape, "block_size": block}


def block_error(init_from: str, block_size: int) -> str | None:
    """A context longer than the pretrained model's positions, as one line; None when it fits."""
    positions = model_shape(init_from)["block_size"]
    if block_size > positions:
        return f"block_size: {block_size} is beyond the {positions} positions of {init_from!r}"
    return None
