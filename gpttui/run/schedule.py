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


def ends_in_warmup(cfg: ScheduleConfig, end: int | None = None) -> bool:
    """Whether the run's last iteration (`end`, max_iters) falls inside its warm-up: its lr never
    reaches learning_rate, whatever the schedule after warm-up would have done."""
    end = cfg.max_iters if end is None else end
    return cfg.decay_lr and cfg.warmup_iters > end


def decay_left(cfg: ScheduleConfig, end: int | None = None) -> float:
    """How much of a cosine's decay (from the peak to min_lr) is still to come at `end` (max_iters):
    0 unless it decays past it, as nanoGPT's configs do when max_iters alone is changed. A run that
    ends inside its warm-up has not begun its decay: 0 here, ends_in_warmup says it."""
    end = cfg.max_iters if end is None else end
    span = cfg.learning_rate - cfg.min_lr
    if (not cfg.decay_lr or cfg.lr_schedule != "cosine" or cfg.lr_decay_iters <= end or span <= 0
            or ends_in_warmup(cfg, end)):
        return 0.0
    return (lr_at(cfg, end) - cfg.min_lr) / span


def schedule_warnings(cfg: ScheduleConfig) -> list[str]:
    """What a schedule is warned of before it runs (none for a sound one): a run that ends inside its
    warm-up, a cosine with no room after warm-up (nanoGPT's get_lr then drops to min_lr at once), a
    cosine ending with more than DECAY_UNFINISHED of its decay to come."""
    if ends_in_warmup(cfg):
        return [f"warmup_iters {cfg.warmup_iters:,} is past max_iters {cfg.max_iters:,}: the run ends inside "
                f"its warm-up, and the lr never reaches learning_rate {cfg.learning_rate:g} (it ends at "
                f"{lr_at(cfg, cfg.max_iters):.2g}; set warmup_iters below max_iters)"]
    if cfg.decay_lr and cfg.lr_schedule == "cosine" and cfg.lr_decay_iters <= cfg.warmup_iters:
        w = cfg.warmup_iters
        when, nanogpt = ((f"at iter {w:,}", "nanoGPT's get_lr gives min_lr past lr_decay_iters")
                         if cfg.lr_decay_iters < w else
                         (f"after iter {w:,}", f"nanoGPT's get_lr divides by zero at iter {w:,}"))
        fix = ("lr_decay_iters = max_iters" if cfg.lr_decay_iters < cfg.max_iters
               else "warmup_iters below lr_decay_iters")
        return [f"lr_decay_iters {cfg.lr_decay_iters:,} is not past warmup_iters {w:,}: the lr warms up to "
                f"learning_rate {cfg.learning_rate:g}, then drops at once to min_lr {cfg.min_lr:g} {when}, "
                f"with no cosine between ({nanogpt}); set {fix}"]
    if (left := decay_left(cfg)) > DECAY_UNFINISHED:
        return [f"lr_decay_iters {cfg.lr_decay_iters:,} is past max_iters {cfg.max_iters:,}: the cosine ends with "
                f"{left:.0%} of its decay to come (set lr_decay_iters = max_iters)"]
    return []


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
