"""The extend screen's logic, apart from its screen: what a typed new end means, the `set` values
it takes, what it does to the learning rate, and the val loss the run should reach there.

No Textual here: screens/extend.py draws these, and the tests call them directly.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from gpttui.analysis import forecast
from gpttui.run import config as C
from gpttui.run import schedule
from gpttui.run.protocol import MAX_ITER

TOKEN_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_END_RE = re.compile(r"^(\+)?(\d+(?:\.\d*)?(?:e\d+)?)([kmbt])?(tok|toks|token|tokens)?$", re.I)
HINT = "iterations (24000, +2000) or tokens (6B, +500M)"


def parse_end(text: str, *, current_iter: int, max_iters: int, tokens_per_iter: int) -> int:
    """The new max_iters a user's entry means; ValueError (one line, for the user) if none.

    `N` is an iteration count, `+N` adds to max_iters, `6B` / `500M` / `2e9 tokens` is a
    total token budget and `+500M` adds tokens to what max_iters would see.
    """
    s = re.sub(r"[\s,_]", "", text)
    if not s:
        raise ValueError(f"type a new end: {HINT}")
    m = _END_RE.match(s)
    if not m:
        raise ValueError(f"{text.strip()!r} is not {HINT}")
    plus, number, unit, tokens_word = m.groups()
    x = float(number)
    too_many = ValueError(f"{text.strip()!r}: more iterations than gpttui trains (at most {MAX_ITER - 1:,})")
    if not math.isfinite(x):
        raise too_many
    if unit or tokens_word:
        iters = math.ceil(x * (TOKEN_UNITS[unit.lower()] if unit else 1) / max(1, tokens_per_iter))
    elif x.is_integer():
        iters = int(x)
    else:
        raise ValueError(f"{text.strip()!r}: an iteration count must be a whole number")
    end = max_iters + iters if plus else iters
    if end >= MAX_ITER:
        raise too_many
    if end <= current_iter:
        raise ValueError(f"{end:,} is not beyond the current iteration {current_iter:,}")
    if end == max_iters:
        raise ValueError(f"{end:,} is already max_iters")
    return end


def extend_values(cfg: C.TrainConfig, new_end: int) -> dict[str, int]:
    """The `set` values for a new end: with cosine, lr_decay_iters keeps its distance to max_iters."""
    values = {"max_iters": new_end}
    if cfg.lr_schedule == "cosine":
        values["lr_decay_iters"] = max(cfg.warmup_iters, cfg.lr_decay_iters + new_end - cfg.max_iters)
    return values


def describe_change(before: C.TrainConfig, after: C.TrainConfig, now: int) -> str:
    """What the new end does to the learning rate, in plain words."""
    was, new = schedule.lr_at(before, now), schedule.lr_at(after, now)
    if not before.decay_lr:
        return f"decay_lr is off: the rate stays at {was:.2e}; only the end moves."
    if now < before.warmup_iters:
        lead = f"Still warming up (until {before.warmup_iters:,}). "
    else:
        lead = ""
    if before.lr_schedule == "wsd":
        d0, d1 = int(schedule.wsd_decay_start(before)), int(schedule.wsd_decay_start(after))
        if now < min(d0, d1) or (now < d0 and d1 > d0):
            what = (f"With wsd the stable phase simply {'lengthens' if d1 > d0 else 'shortens'}: the "
                    f"rate stays at {after.learning_rate:.2e} until iteration {d1:,} (was {d0:,}), "
                    f"then decays to min_lr {after.min_lr:.1e} by {after.max_iters:,}.")
        else:
            what = (f"The run is already in its wsd decay (since {d0:,}); with the new end the decay "
                    f"starts at {d1:,} and ends at {after.max_iters:,}.")
    else:
        what = (f"With cosine, lr_decay_iters moves with max_iters: {before.lr_decay_iters:,} → "
                f"{after.lr_decay_iters:,}.")
    if new > was * 1.001:
        rate = (f" The rate rises again from {was:.2e} now to {new:.2e} ({new / was:.1f}×), "
                f"then decays to min_lr {after.min_lr:.1e} at {_decay_end(after):,}.")
    elif new < was * 0.999:
        rate = (f" The rate drops from {was:.2e} now to {new:.2e} and reaches min_lr "
                f"{after.min_lr:.1e} at {_decay_end(after):,}.")
    else:
        rate = f" The rate now stays {was:.2e}."
    return lead + what + rate


def _decay_end(cfg: C.TrainConfig) -> int:
    return cfg.max_iters if cfg.lr_schedule == "wsd" else min(cfg.lr_decay_iters, cfg.max_iters)


# ---------------------------------------------------------------- val-loss forecast

def eval_points(evals: Iterable[Any]) -> list[tuple[int, float]]:
    """(iter, val_loss) from history Eval objects or pairs, dropping evals without a val loss."""
    out = []
    for e in evals:
        it, v = (e.iter, e.val_loss) if hasattr(e, "val_loss") else (e[0], e[1])
        if v is not None and math.isfinite(v) and v > 0:
            out.append((int(it), float(v)))
    return out


def forecast_val_loss(before: C.TrainConfig, after: C.TrainConfig, evals: Iterable[Any], at_iter: int,
                      current_iter: int, vocab_size: int | None = None) -> forecast.Forecast | None:
    """Val loss at `at_iter` if the run follows `before`'s schedule up to `current_iter` and
    `after`'s from there (gpttui.analysis.forecast's schedule-aware fit, on the run's `vocab_size`;
    None without enough evals)."""
    evals = list(evals)
    points = eval_points(evals)
    if not points:
        return None
    trains = {e.iter: e.train_loss for e in evals if hasattr(e, "train_loss")}   # for the val-train gap
    horizon = max(at_iter, max(i for i, _ in points), current_iter)
    its = forecast.schedule_iters(horizon)
    lrs = schedule.lr_array(after, its)
    done = its <= current_iter
    lrs[done] = schedule.lr_array(before, its[done])
    peak = float(lrs.max())
    fit = forecast.fit([i for i, _ in points], [v for _, v in points], lrs / peak if peak > 0 else lrs,
                       [trains.get(i) for i, _ in points], forecast.schedule_stride(horizon), vocab_size)
    return None if fit is None else fit.predict(at_iter)


def schedule_text(cfg: C.TrainConfig) -> str:
    """The schedule in one line, with the iterations where its phases change."""
    if not cfg.decay_lr:
        return f"constant lr {cfg.learning_rate:.1e}"
    if cfg.lr_schedule == "wsd":
        return (f"wsd: warmup {cfg.warmup_iters:,}, stable to {int(schedule.wsd_decay_start(cfg)):,}, "
                f"decay to {cfg.max_iters:,}")
    return f"cosine: warmup {cfg.warmup_iters:,}, decay to {cfg.lr_decay_iters:,}"
