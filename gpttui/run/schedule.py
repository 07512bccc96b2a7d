"""The learning-rate schedule: nanoGPT's warm-up and cosine decay, warmup-stable-decay, or constant.

`lr_at` gives one iteration's rate (the trainer asks every step); `lr_array` gives many at once
(a forecast over a whole run). The two are written separately, for speed in each use, and
tests/test_schedule.py holds them equal on every kind of schedule.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

DECAY_UNFINISHED = 0.1   # a cosine with more than this fraction of its decay still to come at the end ends early


class ScheduleConfig(Protocol):
    """The TrainConfig fields the schedule reads."""

    learning_rate: float
    min_lr: float
    decay_lr: bool
    lr_schedule: str        # "cosine" or "wsd"
    warmup_iters: int
    lr_decay_iters: int     # cosine: the decay ends here
    max_iters: int
    decay_frac: float       # wsd: the decay takes this last fraction of max_iters


def wsd_decay_start(cfg: ScheduleConfig) -> float:
    """The iteration where warmup-stable-decay leaves its stable phase."""
    return cfg.max_iters * (1.0 - cfg.decay_frac)


def lr_at(cfg: ScheduleConfig, it: int) -> float:
    """The learning rate at iteration `it` (nanoGPT's get_lr, plus wsd)."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if cfg.lr_schedule == "wsd":
        decay_start = wsd_decay_start(cfg)
        if it < decay_start:
            return cfg.learning_rate
        frac = min(1.0, (it - decay_start) / max(1.0, cfg.max_iters - decay_start))
        return cfg.min_lr + (1.0 - frac) * (cfg.learning_rate - cfg.min_lr)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def decay_left(cfg: ScheduleConfig, end: int | None = None) -> float:
    """How much of a cosine's decay (from the peak to min_lr) is still to come at `end` (max_iters):
    0 unless it decays past it, as nanoGPT's configs do when max_iters alone is changed."""
    end = cfg.max_iters if end is None else end
    span = cfg.learning_rate - cfg.min_lr
    if not cfg.decay_lr or cfg.lr_schedule != "cosine" or cfg.lr_decay_iters <= end or span <= 0:
        return 0.0
    return (lr_at(cfg, end) - cfg.min_lr) / span


def unfinished_decay(cfg: ScheduleConfig) -> str | None:
    """The warning for a cosine that ends with more than DECAY_UNFINISHED of its decay to come; None if none."""
    left = decay_left(cfg)
    if left <= DECAY_UNFINISHED:
        return None
    return (f"lr_decay_iters {cfg.lr_decay_iters:,} is past max_iters {cfg.max_iters:,}: the cosine ends with "
            f"{left:.0%} of its decay to come (set lr_decay_iters = max_iters)")


def lr_array(cfg: ScheduleConfig, iters: ArrayLike) -> np.ndarray:
    """`lr_at` for every iteration in `iters`, as a float array."""
    import numpy as np  # here, not at the top: config imports this module, and `gpttui config` needn't load numpy

    it = np.asarray(iters, dtype=float)
    lr, min_lr = cfg.learning_rate, cfg.min_lr
    if not cfg.decay_lr:
        return np.full_like(it, lr)
    if cfg.lr_schedule == "wsd":
        start = wsd_decay_start(cfg)
        frac = np.clip((it - start) / max(1.0, cfg.max_iters - start), 0.0, 1.0)
        out = min_lr + (1.0 - frac) * (lr - min_lr)
    else:
        ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
        out = min_lr + 0.5 * (1.0 + np.cos(np.pi * np.clip(ratio, 0.0, 1.0))) * (lr - min_lr)
        out = np.where(it > cfg.lr_decay_iters, min_lr, out)
    return np.where(it < cfg.warmup_iters, lr * (it + 1) / (cfg.warmup_iters + 1), out)
