"""The config editor's logic, apart from its screen: a form's texts checked as a config, what
applying a candidate config to a run means, and the figures a config implies.

No Textual here: the screen (screens/config.py) calls these on every keystroke, and the tests
call them directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.text import Text

from gpttui.run import config as C
from gpttui.run import layout, live_set, sizing, units


class ApplyAction(StrEnum):
    """How config changes reach a run: a live `set`, a restart from its checkpoint, or a new run."""

    LIVE = "live"
    RESTART = "restart"
    NEW_RUN = "new_run"


@dataclass(frozen=True)
class ConfigChange:
    """What the config and extend screens hand back: `changes` (fields that differ from the config
    the screen was opened with), how to apply them, and the whole candidate `config`."""

    changes: dict[str, Any]
    action: ApplyAction
    config: C.TrainConfig


def format_value(value: Any) -> str:
    """A value as the user types it; `C.parse_value(name, format_value(v)) == v`."""
    if isinstance(value, str):
        plain = value == value.strip() and value.isprintable() and value[:1] not in ("'", '"')
        return value if plain else repr(value)
    return repr(value)


@dataclass
class FieldCheck:
    """The candidate config built from the form's texts, and what is wrong with it, by field."""

    config: C.TrainConfig
    problems: dict[str, list[str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)   # every problem once, 'field: reason'

    @property
    def ok(self) -> bool:
        return not self.lines


def check_fields(texts: dict[str, str], base: C.TrainConfig) -> FieldCheck:
    """Parse each text as its field's type, then validate the whole config.

    A text that doesn't parse leaves the field at its `base` value in the candidate (so the
    figures still show something). A validation problem is marked on its field and on any
    field it names (`n_embd: 384 is not divisible by n_head=5` marks both).
    """
    values: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    lines: list[str] = []
    for name, text in texts.items():
        if text == format_value(getattr(base, name)):
            continue   # base's own value (format_value round-trips): no parse, which costs per keystroke
        try:
            values[name] = C.parse_value(name, text)
        except C.ConfigError as e:
            lines.append(str(e))
            problems.setdefault(name, []).append(_reason(name, str(e)))
    cfg = dataclasses.replace(base, **values)
    for line in C.validate(cfg):
        if line not in lines:
            lines.append(line)
            mark_fields(problems, line)
    return FieldCheck(cfg, problems, lines)


def mark_fields(problems: dict[str, list[str]], line: str) -> None:
    """File a 'field: reason' line under its field (the reason) and under every field its reason
    names as `name=` (the whole line)."""
    head, _, reason = line.partition(": ")
    for name in C.FIELDS:
        if name == head or f"{name}=" in reason:
            problems.setdefault(name, []).append(reason if name == head else line)


def _reason(name: str, message: str) -> str:
    return message[len(name) + 2:] if message.startswith(f"{name}: ") else message


def changed_fields(before: C.TrainConfig, after: C.TrainConfig) -> dict[str, Any]:
    """The fields whose value differs, with `after`'s values."""
    return {n: getattr(after, n) for n in C.FIELDS if getattr(after, n) != getattr(before, n)}


@dataclass
class ApplyPlan:
    """What applying a candidate config to an existing run means."""

    changes: dict[str, Any]
    action: ApplyAction | None   # LIVE or RESTART; None: nothing to apply, or refused
    refusals: list[str]          # 'field: reason', one line each

    @property
    def problems(self) -> dict[str, list[str]]:
        """The refusals by field, as FieldCheck.problems."""
        out: dict[str, list[str]] = {}
        for line in self.refusals:
            mark_fields(out, line)
        return out


def plan_apply(run: C.TrainConfig, candidate: C.TrainConfig, current_iter: int | None = None) -> ApplyPlan:
    """Live if every change is a LIVE_FIELD, else a restart from the checkpoint, unless a change
    is impossible under the run's checkpoint (its model shape or context length, its directory)
    or breaks a rule the engine holds a live `set` to (run/live_set.py, at `current_iter`: a
    learning rate in (0, 1], max_iters not behind the run...). A restart is held to those rules
    too: it continues the same run."""
    changes = changed_fields(run, candidate)
    refusals: list[str] = []
    if changes.keys() & {"vocab_size", "dataset", "data_dir"}:
        # the vocabulary the model would be built with (0 = from the data's meta)
        try:
            old, new = sizing.effective_vocab_size(run), sizing.effective_vocab_size(candidate)
        except C.ConfigError as e:   # the data's meta can't be read
            old = new = 0
            refusals.append(str(e))
        if old != new:
            refusals.append(f"vocab_size: the checkpoint's model has a vocabulary of {old:,}; this "
                            f"config's (with its data) is {new:,} (start a new run instead)")
    for name, new in changes.items():
        old = getattr(run, name)
        if name == "vocab_size":
            continue  # judged above by the effective vocabulary
        if name in C.SHAPE_FIELDS:
            refusals.append(f"{name}: the checkpoint's model has {name}={old!r}; a model's shape "
                            f"can't change under a checkpoint (start a new run instead)")
        elif name == "block_size":  # the checkpoint's position embeddings; directory.check_resume agrees
            refusals.append(f"block_size: the checkpoint's model was built for {old}-token contexts; "
                            f"another context length needs a new run")
        elif name == "out_dir":
            refusals.append(f"out_dir: this run lives in {old!r}; to train elsewhere start a new run")
        elif name == "init_from":
            refusals.append("init_from: a restart always resumes from the run's checkpoint")
    if changes:
        refusals += live_set.new_problems(run, candidate, live_set.limits_of(candidate, current_iter or 0))
    if refusals or not changes:
        return ApplyPlan(changes, None, refusals)
    return ApplyPlan(changes, ApplyAction.LIVE if changes.keys() <= C.LIVE_FIELDS else ApplyAction.RESTART, [])


def new_run_problem(cfg: C.TrainConfig) -> str | None:
    """Why a new run can't start from `cfg` in its out_dir, if it can't."""
    out = Path(cfg.out_dir)
    if cfg.init_from == "scratch" and ((out / layout.METRICS).exists() or (out / layout.CKPT).exists()):
        return f"out_dir: {cfg.out_dir!r} already holds a run; choose a new out_dir for a new run"
    if cfg.init_from == "resume" and not (out / layout.CKPT).exists():
        return f"init_from: 'resume' needs {out / layout.CKPT}, which does not exist"
    return None


def figures(cfg: C.TrainConfig, base: C.TrainConfig, *, measured_ms_per_iter: float | None = None,
            device_memory_bytes: int | None = None) -> Text:
    """The figures a config implies, compared with `base` where they differ."""
    d, b = sizing.derive(cfg), sizing.derive(base)
    t = Text()

    def head(title: str) -> None:
        t.append(f"{title}\n", style="bold")

    def was(now: float, then: float, fmt=units.human_count) -> None:
        if now != then:
            t.append(f"  (was {fmt(then)})", style="dim")

    head("Parameters")
    t.append(f" number of parameters: {d.params_nanogpt / 1e6:.2f}M", style="bold cyan")
    was(d.params_nanogpt, b.params_nanogpt)
    t.append(f"\n total {units.human_count(d.params_total)} · non-embedding "
             f"{units.human_count(d.params_non_embedding)} · vocab {d.vocab_size:,}\n")
    if cfg.optimizer == "muon":
        head("Optimizer")
        t.append(f" {sizing.muon_split(cfg, d.params_total).describe()}\n")
    head("Tokens")
    t.append(f" per iteration {d.tokens_per_iter:,}")
    was(d.tokens_per_iter, b.tokens_per_iter, lambda n: f"{n:,}")
    t.append(f"\n at max_iters ({cfg.max_iters:,}) {units.human_count(d.tokens_at_max_iters)}\n")
    verdict = {"under": "fewer than compute-optimal", "about": "near compute-optimal",
               "over": "more than compute-optimal"}[sizing.compute_optimal_side(d.tokens_per_param)]
    t.append(f" per parameter {d.tokens_per_param:.1f} vs ~{sizing.COMPUTE_OPTIMAL:.0f}: {verdict}\n")
    head("Compute")
    t.append(f" FLOPs/token {units.human_count(d.flops_per_token)} · per iteration {d.flops_per_iter:.3g}\n")
    head("Training memory (estimate)")
    m = d.memory_bytes
    t.append(f" weights {units.human_bytes(m['weights'])} · grads {units.human_bytes(m['grads'])}\n"
             f" {sizing.optimizer_label(cfg)} {units.human_bytes(m['optimizer'])}"
             f" · activations {units.human_bytes(m['activations'])}\n"
             f" total {units.human_bytes(m['total'])}")
    if device_memory_bytes:
        share = m["total"] / device_memory_bytes
        t.append(f" of {units.human_bytes(device_memory_bytes)} device memory ({share:.0%})")
        if share > 1:
            t.append("\n does not fit: lower batch_size (raise gradient_accumulation_steps to keep "
                     "tokens/iter) or block_size", style="bold red")
    t.append("\n")
    head("Time")
    if measured_ms_per_iter:
        est = measured_ms_per_iter * d.flops_per_iter / b.flops_per_iter if b.flops_per_iter else measured_ms_per_iter
        t.append(f" measured {measured_ms_per_iter:,.0f} ms/iter")
        if round(est) != round(measured_ms_per_iter):
            t.append(f"; this config ≈ {est:,.0f} ms/iter (scaled by FLOPs)")
        t.append(f"\n max_iters take ≈ {units.human_duration(est / 1000 * cfg.max_iters)} (without eval pauses)")
    else:
        t.append(" per iteration: known once the run has measured one", style="dim")
    return t
