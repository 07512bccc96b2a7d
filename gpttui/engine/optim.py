"""The optimizer a run trains with: nanoGPT's AdamW, or Muon for the blocks' matrices.

With `optimizer = "muon"`, torch's Muon takes the 2-D weights inside the transformer blocks
(attention and MLP matrices); AdamW, as nanoGPT groups it, takes the rest (token and position
embeddings, the lm_head tied to the token embedding, LayerNorm gains and biases). Both step
together as one optimizer; the learning-rate schedule scales each group's own base rate
(learning_rate for AdamW, muon_lr for Muon) by the same factor.

Muon's update is scaled per matrix as Keller Jordan's original (sqrt(max(1, rows/cols)),
`adjust_lr_fn="original"`), and its weight decay is the config's weight_decay applied with the
same per-step shrink AdamW's decay gets (see muon_weight_decay): both chosen by
bench/time_to_loss.py's measurements.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from gpttui.engine.checkpoint import CheckpointError
from gpttui.engine.model import GPT
from gpttui.run import config as C
from gpttui.run import directory

KIND_KEY = directory.OPTIMIZER_KIND_KEY  # in the checkpoint; absent (nanoGPT's) means AdamW
ADJUST_LR_FN = "original"


def muon_params(model: GPT) -> dict[str, torch.nn.Parameter]:
    """The parameters Muon takes: every 2-D weight inside the transformer blocks."""
    return {n: p for n, p in model.named_parameters()
            if p.requires_grad and n.startswith("transformer.h.") and p.dim() == 2}


def muon_summary(model: GPT) -> str:
    """One line for the log: which parameters Muon takes and which AdamW keeps."""
    mu = muon_params(model)
    n_mu = sum(p.numel() for p in mu.values())
    rest = [p for n, p in model.named_parameters() if p.requires_grad and n not in mu]
    return (f"optimizer muon: Muon on the {len(mu)} 2-D weights of the transformer blocks "
            f"({n_mu:,} parameters); AdamW on the embeddings, lm_head (tied to wte) and the "
            f"{sum(p.dim() < 2 for p in rest)} 1-D gains/biases ({sum(p.numel() for p in rest):,} parameters)")


def muon_weight_decay(cfg: C.TrainConfig) -> float:
    """Muon's decay coefficient. torch's Muon shrinks by (1 - lr * wd) per step like AdamW, but
    at a learning rate ~20x AdamW's; scaling wd by learning_rate / muon_lr gives the matrices the
    same shrink per step that weight_decay gives them under AdamW, whatever muon_lr is."""
    return cfg.weight_decay * cfg.learning_rate / cfg.muon_lr


class MuonAdamW:
    """Muon and AdamW stepped as one optimizer: what the trainer and GradScaler use of one
    (param_groups, step, zero_grad, state_dict, load_state_dict)."""

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon = muon
        self.adamw = adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.adamw.param_groups + self.muon.param_groups

    @property
    def state(self) -> dict[Any, Any]:
        """Per-parameter state, as torch.optim.Optimizer.state (what the sizing test counts)."""
        return {**self.adamw.state, **self.muon.state}

    def step(self) -> None:
        self.adamw.step()
        self.muon.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adamw.zero_grad(set_to_none=set_to_none)
        self.muon.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"adamw": self.adamw.state_dict(), "muon": self.muon.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adamw.load_state_dict(state["adamw"])
        self.muon.load_state_dict(state["muon"])


Optimizer = torch.optim.AdamW | MuonAdamW


def build(model: GPT, cfg: C.TrainConfig, device_type: str,
          log: Callable[[str], None] | None = None) -> Optimizer:
    """The run's optimizer, its groups at their base learning rates."""
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "adamw":
        return model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, betas, device_type, log)
    mu = muon_params(model)
    rest = [p for n, p in model.named_parameters() if p.requires_grad and n not in mu]
    groups = [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]
    try:
        adamw = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=betas, fused=device_type in ("cuda", "cpu"))
    except RuntimeError:  # an older torch: fused kernels for CUDA only
        adamw = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=betas)
    muon = torch.optim.Muon(list(mu.values()), lr=cfg.muon_lr, momentum=cfg.muon_momentum, nesterov=True,
                            weight_decay=muon_weight_decay(cfg), adjust_lr_fn=ADJUST_LR_FN)
    if log:
        log(muon_summary(model))
    return MuonAdamW(muon, adamw)


def set_lr(opt: Optimizer, cfg: C.TrainConfig, lr: float) -> None:
    """AdamW's groups at `lr` (the schedule's value); Muon's at muon_lr scaled by the same factor."""
    if isinstance(opt, MuonAdamW):
        for group in opt.adamw.param_groups:
            group["lr"] = lr
        for group in opt.muon.param_groups:
            group["lr"] = cfg.muon_lr * lr / cfg.learning_rate
    else:
        for group in opt.param_groups:
            group["lr"] = lr


def apply_live(opt: Optimizer, cfg: C.TrainConfig) -> None:
    """A live `set` of weight_decay, a learning rate or muon_momentum reaches every group it
    concerns (the learning rates themselves are set at every step by set_lr)."""
    if isinstance(opt, MuonAdamW):
        opt.adamw.param_groups[0]["weight_decay"] = cfg.weight_decay
        for group in opt.muon.param_groups:
            group["weight_decay"] = muon_weight_decay(cfg)
            group["momentum"] = cfg.muon_momentum
    else:
        opt.param_groups[0]["weight_decay"] = cfg.weight_decay


def saved_state(opt: Optimizer, device_type: str) -> dict[str, Any]:
    """The optimizer's state dict for a checkpoint, AdamW flagged fused only on CUDA as nanoGPT's
    would be (its resume takes our flags, and an older torch has no fused CPU kernel)."""
    state = opt.state_dict()
    if device_type != "cuda":
        for group in (state["adamw"] if isinstance(opt, MuonAdamW) else state)["param_groups"]:
            group["fused"] = None
    return state


def load_state(opt: Optimizer, state: dict[str, Any], cfg: C.TrainConfig) -> None:
    """A checkpoint's optimizer state (a resume, an undo), keeping this process's fused flags (a
    checkpoint made on a GPU, with fused AdamW, resumes anywhere) and the config's decay and
    momentum over the checkpoint's."""
    adamw = opt.adamw if isinstance(opt, MuonAdamW) else opt
    fused = [g.get("fused") for g in adamw.param_groups]
    opt.load_state_dict(state)
    for g, f in zip(adamw.param_groups, fused):
        g["fused"] = f
    apply_live(opt, cfg)


def check_resume(ckpt: dict[str, Any], cfg: C.TrainConfig, path: Any) -> None:
    """A checkpoint's optimizer state only fits the optimizer it was made with (the command
    checks the same without torch before it starts an engine: run/directory.py)."""
    if why := directory.optimizer_mismatch(ckpt, cfg, path):
        raise CheckpointError(why)
