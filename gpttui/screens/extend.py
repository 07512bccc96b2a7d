"""Extend (or shorten) a run: a new end as iterations, +N or a token budget; what it does to
the learning rate, what it costs in time and what it should buy in val loss.

Dismisses with the values for the engine's `set` command, e.g. {"max_iters": 24000,
"lr_decay_iters": 24000} (cosine moves lr_decay_iters with max_iters), or None. The
dashboard sends them to a running engine, or resumes a finished run with them.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import get_current_worker

from gpttui.run import config as C
from gpttui.widgets.lr_chart import AFTER_COLOR, BEFORE_COLOR, LRChart

TOKEN_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_END_RE = re.compile(r"^(\+)?(\d+(?:\.\d*)?(?:e\d+)?)([kmbt])?(tok|toks|token|tokens)?$", re.I)
HINT = "iterations (24000), +N (+2000) or tokens (6B, +500M)"


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
    if unit or tokens_word:
        iters = math.ceil(x * (TOKEN_UNITS[unit.lower()] if unit else 1) / max(1, tokens_per_iter))
    elif x.is_integer():
        iters = int(x)
    else:
        raise ValueError(f"{text.strip()!r}: an iteration count must be a whole number")
    end = max_iters + iters if plus else iters
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


def wsd_decay_start(cfg: C.TrainConfig) -> int:
    return int(cfg.max_iters * (1.0 - cfg.decay_frac))


def describe_change(before: C.TrainConfig, after: C.TrainConfig, now: int) -> str:
    """What the new end does to the learning rate, in plain words."""
    was, new = C.lr_at(before, now), C.lr_at(after, now)
    if not before.decay_lr:
        return f"decay_lr is off: the rate stays at {was:.2e}; only the end moves."
    if now < before.warmup_iters:
        lead = f"Still warming up (until {before.warmup_iters:,}). "
    else:
        lead = ""
    if before.lr_schedule == "wsd":
        d0, d1 = wsd_decay_start(before), wsd_decay_start(after)
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


def evals_between(start: int, end: int, eval_interval: int) -> int:
    """Evaluations the engine runs at iterations in (start, end] (every multiple of eval_interval)."""
    return end // eval_interval - start // eval_interval if eval_interval > 0 else 0


# ---------------------------------------------------------------- val-loss forecast

@dataclass
class Forecast:
    iter: int
    val_loss: float
    low: float     # the band of gpttui.analysis.forecast (model spread, eval noise, extrapolation)
    high: float
    n_evals: int   # evals the fit used


def eval_points(evals: Iterable[Any]) -> list[tuple[int, float]]:
    """(iter, val_loss) from runlog.Eval objects or pairs, dropping evals without a val loss."""
    out = []
    for e in evals:
        it, v = (e.iter, e.val_loss) if hasattr(e, "val_loss") else (e[0], e[1])
        if v is not None and math.isfinite(v) and v > 0:
            out.append((int(it), float(v)))
    return out


def forecast_val_loss(before: C.TrainConfig, after: C.TrainConfig, evals: Iterable[Any], at_iter: int,
                      current_iter: int) -> Forecast | None:
    """Val loss at `at_iter` if the run follows `before`'s schedule up to `current_iter` and
    `after`'s from there (gpttui.analysis.forecast's schedule-aware fit; None without enough evals)."""
    from gpttui.analysis import forecast as F  # numpy: imported when a forecast is first asked for

    points = eval_points(evals)
    if not points:
        return None
    horizon = max(at_iter, max(i for i, _ in points), current_iter)
    lrs = F.lr_schedule(after, horizon)
    cut = min(current_iter, horizon) + 1
    lrs[:cut] = F.lr_schedule(before, cut - 1)
    peak = float(lrs.max())
    fit = F.fit([i for i, _ in points], [v for _, v in points], lrs / peak if peak > 0 else lrs)
    if fit is None:
        return None
    f = fit.predict(at_iter)
    return Forecast(at_iter, f.val_loss, f.low, f.high, fit.n_points)


# ---------------------------------------------------------------- the screen

class ExtendScreen(Screen[dict | None]):
    """Choose a new end for a run, see its learning rate, cost and expected val loss."""

    CSS_PATH = "extend.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+r", "apply", "Apply")]

    def __init__(self, config: C.TrainConfig | None = None, *, current_iter: int = 0,
                 tokens_per_iter: int | None = None, ms_per_iter: float | None = None,
                 evals: list | None = None, eval_overhead_s_per_eval: float | None = None,
                 resume_iter: int | None = None) -> None:
        """Without `config`, the screen extends the run of gpttui's app (its public API).
        `resume_iter`: the run is not running, and applying resumes it from a checkpoint there."""
        super().__init__()
        if config is None:
            app: Any = self.app
            config, live = app.config, app.live
            current_iter = live.iter
            tokens_per_iter = live.hello.get("tokens_per_iter")
            ms_per_iter = app.ms_per_iter
            evals = app.history.evals
            eval_overhead_s_per_eval = live.eval_pause()
            resume_iter = None if app.engine_alive else live.last_checkpoint_iter
        self.config = config
        self.current_iter = current_iter
        self.tokens_per_iter = tokens_per_iter or C.derive(config).tokens_per_iter
        self.ms_per_iter = ms_per_iter
        self.evals = list(evals or [])
        self.eval_overhead = eval_overhead_s_per_eval
        self.resume_iter = resume_iter
        self.values: dict[str, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Extend training", id="title")
        yield Static(self._now_text(), id="now")
        with Horizontal(id="entry"):
            yield Label("new end", classes="name")
            yield Input(id="end", placeholder=f"e.g. {2 * self.config.max_iters}", compact=True)
            yield Static(HINT, id="hint", markup=False)
        yield Static("", id="error", markup=False)
        yield LRChart(self.config, self.current_iter, id="chart")
        yield Static(self._legend(False), id="legend")
        yield Static("", id="summary")
        yield Static("", id="forecast")
        with Horizontal(id="actions"):
            yield Static("", id="spacer")
            yield Button("Apply", id="apply", variant="primary", compact=True, disabled=True)
            yield Button("Cancel", id="cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#end", Input).focus()
        self._update("")

    def _now_text(self) -> Text:
        cfg, it = self.config, self.current_iter
        t = Text()
        t.append("now ", style="bold")
        t.append(f"iteration {it:,} of max_iters {cfg.max_iters:,} · {schedule_text(cfg)}\n")
        t.append(f"    {C.human_count(it * self.tokens_per_iter)} tokens seen "
                 f"({self.tokens_per_iter:,}/iter) · lr {C.lr_at(cfg, it):.2e}")
        if self.ms_per_iter:
            t.append(f" · {self.ms_per_iter:,.0f} ms/iter")
        if self.resume_iter is not None:
            t.append(f"\n    not running: Apply resumes it from its checkpoint at iteration "
                     f"{self.resume_iter:,}", style="yellow")
        return t

    def _legend(self, after: bool) -> Text:
        t = Text("  ")
        t.append("── before", style=BEFORE_COLOR)
        if after:
            t.append("   ")
            t.append("── after", style=AFTER_COLOR)
        t.append(f"   │ now ({self.current_iter:,})", style="dim")
        return t

    @on(Input.Changed, "#end")
    def _changed(self, event: Input.Changed) -> None:
        self._update(event.value)

    def _update(self, text: str) -> None:
        cfg = self.config
        error, after = "", None
        if text.strip():
            try:
                end = parse_end(text, current_iter=self.current_iter, max_iters=cfg.max_iters,
                                tokens_per_iter=self.tokens_per_iter)
                values = extend_values(cfg, end)
                after = C.replace(cfg, **values)
                problems = C.validate(after)
                if problems:
                    error, after = problems[0], None
            except ValueError as e:
                error = str(e)
        self.values = values if after is not None else None
        self.query_one("#end", Input).set_class(bool(error), "-invalid")
        error_line = self.query_one("#error", Static)
        error_line.update(Text(f"✗ {error}", style="bold red") if error else "")
        error_line.display = bool(error)
        self.query_one("#chart", LRChart).show(cfg, after, self.current_iter)
        self.query_one("#legend", Static).update(self._legend(after is not None))
        self.query_one("#summary", Static).update(self._summary(after))
        end = after.max_iters if after else cfg.max_iters
        self.query_one("#forecast", Static).update(Text(f"  val loss at {end:,}: forecasting…", style="dim"))
        self.run_worker(partial(self._forecast, after or cfg, end), thread=True, exclusive=True,
                        group="forecast")
        self.query_one("#apply", Button).disabled = after is None
        self.refresh_bindings()

    def _summary(self, after: C.TrainConfig | None) -> Text:
        cfg, it = self.config, self.current_iter
        t = Text()
        if after is None:
            t.append(f"At the current end ({cfg.max_iters:,}): ", style="bold")
            t.append(self._outcome(cfg.max_iters))
            return t
        added = after.max_iters - cfg.max_iters
        t.append("change ", style="bold")
        t.append(", ".join(f"{k} {getattr(cfg, k):,} → {v:,}" for k, v in self.values.items()))
        t.append(f" ({added:+,} iterations, {C.human_count(added * self.tokens_per_iter)} tokens)\n")
        t.append(describe_change(cfg, after, it) + "\n")
        t.append("at the new end ", style="bold")
        t.append(self._outcome(after.max_iters))
        return t

    def _outcome(self, end: int) -> str:
        """Tokens seen and time left at iteration `end`."""
        it = self.current_iter
        parts = [f"{C.human_count(end * self.tokens_per_iter)} tokens seen"]
        if self.ms_per_iter:
            evals = evals_between(it, end, self.config.eval_interval)
            secs = (end - it) * self.ms_per_iter / 1000
            how = f"at {self.ms_per_iter:,.0f} ms/iter"
            if self.eval_overhead:
                secs += evals * self.eval_overhead
                how += f" + {evals} evals × {self.eval_overhead:.1f} s"
            elif evals:
                how += f"; {evals} eval pauses not measured yet"
            finish = time.strftime("%a %H:%M", time.localtime(time.time() + secs))
            parts.append(f"ETA {C.human_duration(secs)} ({how}), around {finish}")
        else:
            parts.append("ETA unknown until the run has measured its speed")
        return "\n  ".join(parts)

    def _forecast(self, after: C.TrainConfig, end: int) -> None:
        """Worker thread: the fit walks the whole schedule, which can be 10^6 iterations."""
        f = forecast_val_loss(self.config, after, self.evals, end, self.current_iter)
        if get_current_worker().is_cancelled:
            return
        if f is None:
            have = len(eval_points(self.evals))
            text = Text(f"  no val-loss forecast yet (needs 3 evals past the first tenth of the run; "
                        f"{have} so far)", style="dim")
        else:
            last_it, last_val = eval_points(self.evals)[-1]
            text = Text(f"  val loss at {end:,} ≈ {f.val_loss:.3f} ({f.low:.3f}–{f.high:.3f}; "
                        f"schedule-aware fit to {f.n_evals} evals), last eval {last_val:.3f} at {last_it:,}")
        self.app.call_from_thread(self._show_forecast, text)

    def _show_forecast(self, text: Text) -> None:
        if self.is_attached:  # the screen may have been dismissed while the fit ran
            self.query_one("#forecast", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return True if self.values else None
        return True

    @on(Input.Submitted, "#end")
    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.values:
            self.dismiss(dict(self.values))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def schedule_text(cfg: C.TrainConfig) -> str:
    if not cfg.decay_lr:
        return f"constant lr {cfg.learning_rate:.1e}"
    if cfg.lr_schedule == "wsd":
        return (f"wsd: warmup {cfg.warmup_iters:,}, stable to {wsd_decay_start(cfg):,}, "
                f"decay to {cfg.max_iters:,}")
    return f"cosine: warmup {cfg.warmup_iters:,}, decay to {cfg.lr_decay_iters:,}"
