"""What a live `set` may change in a running run, and the ranges it must stay in.

A value sent to a running engine lands between two optimizer steps with no one checking it
by eye: `learning_rate = 1e308` makes the next step NaN, `eval_iters = 1e12` freezes the run in
its next evaluation. So beyond the config's own rules (config.validate: the whole config stays
sound, e.g. min_lr <= learning_rate) every live field has a sane range: numbers finite,
learning rates in (0, 1], counts integral and bounded, max_iters not behind the run, evaluation
bounded by what the data holds. The engine refuses a set that breaks one, naming each field;
the dashboard's config editor checks the same rules before sending. Torch-free.

Changes to the learning-rate fields are the ones to undo: the engine keeps the run's state from
before the change (UNDO_CKPT) until the change has survived its first evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpttui.run import config as C

LR_FIELDS = frozenset({"learning_rate", "min_lr", "warmup_iters", "lr_decay_iters", "decay_frac"})
UNDO_CKPT = "ckpt_undo.pt"  # in the run directory: the state from before a learning-rate change

MAX_ITERS = 10**12         # iteration counts and intervals: beyond any run
MAX_EVAL_ITERS = 10_000    # batches per split in one evaluation (nanoGPT uses 200)
MAX_VAL_PASSES = 100       # an evaluation draws at most this many times val.bin's windows
MAX_KEEP = 1000            # numbered checkpoints kept
MAX_WEIGHT_DECAY = 10.0
ITER_FIELDS = ("max_iters", "lr_decay_iters", "warmup_iters", "eval_interval", "log_interval")


@dataclass
class RunLimits:
    """What the running run allows beyond the config: where it is, what its data holds."""

    iter_num: int = 0                 # the iteration the run is at
    val_tokens: int | None = None     # tokens in val.bin (None: unknown)


def problems(cfg: C.TrainConfig, limits: RunLimits | None = None) -> list[str]:
    """The live fields' range problems, one line each ('field: what is wrong')."""
    limits = limits or RunLimits()
    errs: list[str] = []
    for name in sorted(C.LIVE_FIELDS):
        v = getattr(cfg, name)
        if isinstance(v, float) and not math.isfinite(v):
            errs.append(f"{name}: must be a finite number, got {v}")
    # upper bounds only: config.validate already refuses a rate <= 0 or a negative min_lr/weight_decay
    if math.isfinite(cfg.learning_rate) and cfg.learning_rate > 1:
        errs.append(f"learning_rate: must be in (0, 1], got {cfg.learning_rate:g}")
    if math.isfinite(cfg.min_lr) and cfg.min_lr > 1:
        errs.append(f"min_lr: must be in [0, 1], got {cfg.min_lr:g}")
    if math.isfinite(cfg.decay_frac) and not 0 < cfg.decay_frac <= 1:  # (validate checks it for wsd only)
        errs.append(f"decay_frac: must be in (0, 1], got {cfg.decay_frac:g}")
    if math.isfinite(cfg.weight_decay) and cfg.weight_decay > MAX_WEIGHT_DECAY:
        errs.append(f"weight_decay: must be in [0, {MAX_WEIGHT_DECAY:g}], got {cfg.weight_decay:g}")
    for name in ITER_FIELDS:
        if getattr(cfg, name) > MAX_ITERS:
            errs.append(f"{name}: {getattr(cfg, name):,} is beyond any run (at most {MAX_ITERS:,})")
    if cfg.decay_lr and cfg.lr_schedule == "cosine" and cfg.warmup_iters > cfg.lr_decay_iters:
        # nanoGPT starts such a run (it stays in warm-up), but changed live it is a typo, not a plan
        errs.append(f"warmup_iters: {cfg.warmup_iters} is beyond lr_decay_iters={cfg.lr_decay_iters}")
    if cfg.max_iters < limits.iter_num:
        errs.append(f"max_iters: {cfg.max_iters:,} is behind the run, which is at iter {limits.iter_num:,}")
    if cfg.eval_iters > MAX_EVAL_ITERS:
        errs.append(f"eval_iters: {cfg.eval_iters:,} batches per split would stall training in every "
                    f"evaluation (at most {MAX_EVAL_ITERS:,})")
    elif limits.val_tokens is not None and cfg.eval_iters > 0:
        windows = max(1, limits.val_tokens - cfg.block_size)
        most = max(1, MAX_VAL_PASSES * windows // cfg.batch_size)
        if cfg.eval_iters > most:
            errs.append(f"eval_iters: {cfg.eval_iters:,} batches of {cfg.batch_size} would read val.bin's "
                        f"{limits.val_tokens:,} tokens over {MAX_VAL_PASSES} times (at most {most:,})")
    if cfg.keep_checkpoints > MAX_KEEP:
        errs.append(f"keep_checkpoints: must be at most {MAX_KEEP}, got {cfg.keep_checkpoints:,}")
    return errs


def limits_of(cfg: C.TrainConfig, iter_num: int) -> RunLimits:
    """The limits of a run on `cfg`'s data at `iter_num`, val.bin measured as the engine's
    batches measure it: for a check made outside the engine (the config editor's)."""
    try:
        val_tokens = (cfg.resolved_data_dir() / "val.bin").stat().st_size // 2
    except OSError:
        val_tokens = None
    return RunLimits(iter_num, val_tokens)


def new_problems(before: C.TrainConfig, after: C.TrainConfig, limits: RunLimits | None = None) -> list[str]:
    """What changing a running run from `before` to `after` breaks, one line per problem: the
    config's rules and the ranges above. A problem `before` already had is not held against the
    change (the run was started with it)."""
    had = set(C.validate(before)) | set(problems(before, limits))
    return [e for e in [*C.validate(after), *problems(after, limits)] if e not in had]


def apply(cfg: C.TrainConfig, values: dict[str, Any],
          limits: RunLimits | None = None) -> tuple[C.TrainConfig, dict[str, Any]]:
    """The config after a live set of `values`, and what actually changed. ConfigError naming
    every refused field: not live, wrong type, out of range, or making the config unsound. A
    problem the running config already had is not held against the set."""
    frozen = sorted(k for k in values if k not in C.LIVE_FIELDS)
    if frozen:
        raise C.ConfigError(f"{', '.join(map(str, frozen))}: cannot change while training "
                            f"(live fields: {', '.join(sorted(C.LIVE_FIELDS))})")
    typed, errs = {}, []
    for key, value in values.items():
        try:
            typed[key] = C.coerce(key, value)
        except C.ConfigError as e:
            errs.append(str(e))
    if errs:
        raise C.ConfigError("; ".join(errs))
    new = C.replace(cfg, **typed)
    errs = new_problems(cfg, new, limits)
    if errs:
        raise C.ConfigError("; ".join(errs))
    return new, {k: v for k, v in typed.items() if v != getattr(cfg, k)}
