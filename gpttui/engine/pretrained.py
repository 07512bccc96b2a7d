"""Loading a Hugging Face GPT-2 `model.safetensors` into nanoGPT's GPT, as nanoGPT's
`GPT.from_pretrained` maps it: the same names under `transformer.`, the attention masks
skipped, and the four Conv1D weights (c_attn, attn.c_proj, c_fc, mlp.c_proj) transposed to
Linear's layout. The position table is cropped to the config's block_size (nanoGPT's
crop_block_size). The model must already have the file's shape (run/pretrained.py set it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gpttui.engine.model import GPT
from gpttui.run import pretrained

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
SKIPPED = (".attn.bias", ".attn.masked_bias")  # causal masks stored as buffers, not weights
TIED = "lm_head.weight"  # the same tensor as transformer.wte.weight


class PretrainedLoadError(ValueError):
    """Weights that do not fit, or cannot be read; one line naming the file."""


def our_name(hf_key: str) -> str | None:
    """nanoGPT's state-dict name for a Hugging Face key (with or without the `transformer.`
    prefix: GPT2Model files lack it, GPT2LMHeadModel files have it); None for a skipped buffer."""
    if hf_key.endswith(SKIPPED):
        return None
    if hf_key == TIED:
        return TIED
    return "transformer." + hf_key.removeprefix("transformer.")


def load_into(model: GPT, init_from: str) -> Path:
    """Copy the weights `init_from` stands for into `model`; the file read."""
    path = pretrained.weights_file(init_from)
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise PretrainedLoadError(f"init_from: reading {path.name} needs the safetensors package: "
                                  f"pip install 'gpttui[safetensors]'") from None
    state = model.state_dict()
    block = model.config.block_size
    seen: set[str] = set()
    try:
        with safe_open(str(path), framework="pt") as f, torch.no_grad():
            for key in f.keys():
                name = our_name(key)
                if name is None:
                    continue
                if name not in state:
                    raise PretrainedLoadError(f"{path}: {key!r} is not a GPT-2 weight this model has")
                t = f.get_tensor(key)
                if name.endswith(CONV1D):
                    t = t.t()
                if name == "transformer.wpe.weight":
                    t = t[:block]
                if t.shape != state[name].shape:
                    raise PretrainedLoadError(f"{path}: {key} has shape {tuple(t.shape)}, the model "
                                              f"needs {tuple(state[name].shape)}")
                state[name].copy_(t.to(state[name].dtype))
                seen.add(name)
    except (OSError, RuntimeError, SafetensorError) as e:   # unreadable, or not a safetensors file
        raise PretrainedLoadError(f"{path}: cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    missing = sorted(set(state) - seen - {TIED})
    if missing:
        raise PretrainedLoadError(f"{path}: no {missing[0]!r} among its weights"
                                  + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return path
