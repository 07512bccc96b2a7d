"""Extend (or shorten) a run: a new end as iterations, +N or a token budget; what it does to
the learning rate, what it costs in time and what it should buy in val loss.

On a run only read (`gpttui open`) it is a what-if: the same forecast, tokens and time, no
Apply. Otherwise it dismisses with a LIVE ConfigChange whose changes are the engine's `set` values, e.g.
{"max_iters": 24000, "lr_decay_iters": 24000} (cosine moves lr_decay_iters with max_iters), or
None. The app sends them to a running engine, or resumes a finished run with them. The logic is
in analysis/extend_plan.py; this module shows it.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import get_current_worker

from gpttui.analysis import forecast
from gpttui.analysis.config_edit import ApplyAction, ConfigChange
from gpttui.analysis.extend_plan import (
    HINT,
    describe_change,
    eval_points,
    extend_values,
    forecast_val_loss,
    parse_end,
    schedule_text,
)
from gpttui.analysis.pace import Pace
from gpttui.run import config as C
from gpttui.run import schedule, sizing, units
from gpttui.run.history import Eval
from gpttui.screens.controller import RunController
from gpttui.widgets.lr_chart import AFTER_COLOR, BEFORE_COLOR, LRChart

FOLLOW_S = 1.0   # how often the screen takes the iteration of a run training under it


class ExtendScreen(Screen[ConfigChange | None]):
    """Choose a new end for a run, see its learning rate, cost and expected val loss."""

    CSS_PATH = "extend.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+r", "apply", "Apply")]

    def __init__(self, config: C.TrainConfig, *, current_iter: int = 0,
                 tokens_per_iter: int | None = None, pace: Pace | None = None,
                 evals: list[Eval] | None = None, vocab_size: int | None = None,
                 resume_iter: int | None = None, what_if: bool = False, stopped: bool = False,
                 follow: Callable[[], int] | None = None) -> None:
        """`pace`: the run's (analysis/pace.py; None: not measured yet), what the time to a new
        end is counted with, as the status line's and the doctor's ETA.
        `resume_iter`: the run is not running, and applying resumes it from a checkpoint there.
        `what_if`: a run only read (`gpttui open`): forecast, tokens and time, nothing to apply.
        `stopped`: no engine runs it (without `resume_iter`, applying starts it again from scratch).
        `follow`: the run's iteration now, while it trains on under the screen (what "now" is follows it)."""
        super().__init__()
        self.what_if = what_if
        self.stopped = stopped
        self.config = config
        self.current_iter = current_iter
        self.tokens_per_iter = tokens_per_iter or sizing.derive(config).tokens_per_iter
        if pace is not None:   # the config's eval_interval (live changes included); a resume evaluates again
            pace = dataclasses.replace(pace, eval_interval=config.eval_interval,
                                       evaluated_at=None if resume_iter is not None else pace.evaluated_at)
        self.pace = pace
        self.evals = list(evals or [])
        self.vocab_size = vocab_size   # the forecast's prior (forecast.anneal_gain), as the doctor's
        self.resume_iter = resume_iter
        self.follow = follow
        self.values: dict[str, int] | None = None
        self.after: C.TrainConfig | None = None   # the config with the new end, once it is valid

    @classmethod
    def for_run(cls, run: RunController) -> ExtendScreen:
        live = run.live
        resume = None if run.engine_alive or run.read_only else live.last_checkpoint_iter
        # a resume trains on from its checkpoint, which may be behind the last iteration shown
        return cls(run.config, current_iter=live.iter if resume is None else resume,
                   tokens_per_iter=live.hello.get("tokens_per_iter") or run.history.tokens_per_iter,
                   pace=live.pace(), evals=run.history.evals, vocab_size=run.history.vocab_size,
                   resume_iter=resume, what_if=run.read_only, stopped=not run.engine_alive,
                   follow=(lambda: live.iter) if run.engine_alive and not run.read_only else None)

    def compose(self) -> ComposeResult:
        yield Static("Extend training: what if? (read-only: nothing is applied)" if self.what_if
                     else "Extend training", id="title")
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
            if not self.what_if:
                yield Button("Apply", id="apply", variant="primary", compact=True, disabled=True)
            yield Button("Close" if self.what_if else "Cancel", id="cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#end", Input).focus()
        self._update("")
        if self.follow is not None:
            self.set_interval(FOLLOW_S, self._follow)

    def _follow(self) -> None:
        """The run trained on: 'now', the lr now and the ETA move with it (the forecast, a fit, waits
        for the next entry)."""
        it = self.follow() if self.follow is not None else self.current_iter
        if it == self.current_iter:
            return
        self.current_iter = it
        self.query_one("#now", Static).update(self._now_text())
        self._show(self.query_one("#end", Input).value)

    def _now_text(self) -> Text:
        cfg, it = self.config, self.current_iter
        t = Text()
        t.append("now ", style="bold")
        t.append(f"iteration {it:,} of max_iters {cfg.max_iters:,} · {schedule_text(cfg)} · {cfg.optimizer}\n")
        t.append(f"    {units.human_count(it * self.tokens_per_iter)} tokens seen "
                 f"({self.tokens_per_iter:,}/iter) · lr {schedule.lr_at(cfg, it):.2e}")
        if cfg.optimizer == "muon":  # the schedule scales Muon's lr in proportion
            t.append(f" · Muon lr {schedule.lr_at(cfg, it) * cfg.muon_lr / cfg.learning_rate:.2e}")
        if self.pace:
            t.append(f" · {self.pace.ms_per_iter:,.0f} ms/iter")
        if self.resume_iter is not None:   # (never in a what-if)
            t.append(f"\n    not running: Apply resumes it from its checkpoint at iteration "
                     f"{self.resume_iter:,}", style="yellow")
        elif self.stopped and not self.what_if:
            t.append("\n    not running and no checkpoint: Apply starts it again from iteration 0",
                     style="yellow")
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
        after = self._show(text)
        cfg = self.config
        end = after.max_iters if after else cfg.max_iters
        self.query_one("#forecast", Static).update(Text(f"  val loss at {end:,}: forecasting…", style="dim"))
        self.run_worker(partial(self._forecast, after or cfg, end), thread=True, exclusive=True,
                        group="forecast")

    def _show(self, text: str) -> C.TrainConfig | None:
        """Check the entry and show what it does (all but the forecast); the config it makes, if valid."""
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
        self.after = after
        self.query_one("#end", Input).set_class(bool(error), "-invalid")
        error_line = self.query_one("#error", Static)
        error_line.update(Text(f"✗ {error}", style="bold red") if error else "")
        error_line.display = bool(error)
        self.query_one("#chart", LRChart).show(cfg, after, self.current_iter)
        self.query_one("#legend", Static).update(self._legend(after is not None))
        self.query_one("#summary", Static).update(self._summary(after, self.values))
        if not self.what_if:
            self.query_one("#apply", Button).disabled = after is None
        self.refresh_bindings()
        return after

    def _summary(self, after: C.TrainConfig | None, values: dict[str, int] | None) -> Text:
        cfg, it = self.config, self.current_iter
        t = Text()
        if after is None or values is None:
            t.append(f"At the current end ({cfg.max_iters:,}): ", style="bold")
            t.append(self._outcome(cfg.max_iters))
            return t
        added = after.max_iters - cfg.max_iters
        t.append("change ", style="bold")
        t.append(", ".join(f"{k} {getattr(cfg, k):,} → {v:,}" for k, v in values.items()))
        t.append(f" ({added:+,} iterations, {units.human_count(added * self.tokens_per_iter)} tokens)\n")
        t.append(describe_change(cfg, after, it) + "\n")
        t.append("at the new end ", style="bold")
        t.append(self._outcome(after.max_iters))
        return t

    def _outcome(self, end: int) -> str:
        """Tokens seen and time left at iteration `end`."""
        it = self.current_iter
        parts = [f"{units.human_count(end * self.tokens_per_iter)} tokens seen"]
        p = self.pace
        if p is not None:
            evals, secs = p.evals(it, end), p.seconds(it, end)
            how = f"at {p.ms_per_iter:,.0f} ms/iter"
            if p.eval_pause_s:
                how += f" + {evals} evals × {p.eval_pause_s:.1f} s{'' if p.pause_measured else ' (estimated)'}"
            elif evals:
                how += f"; {evals} eval pauses not measured yet"
            parts.append(f"ETA {units.human_duration(secs)} ({how}), around {units.finish_time(secs, time.time())}")
        else:
            parts.append("ETA unknown until the run has measured its speed")
        return "\n  ".join(parts)

    def _forecast(self, after: C.TrainConfig, end: int) -> None:
        """Worker thread: the fit walks the whole schedule, which can be 10^6 iterations."""
        f = forecast_val_loss(self.config, after, self.evals, end, self.current_iter, self.vocab_size)
        if get_current_worker().is_cancelled:
            return
        if f is not None and f.too_wide:
            text = Text(f"  val loss at {end:,}: {forecast.too_early(f)}", style="dim")
        elif f is None:
            points = eval_points(self.evals)
            trains = {e.iter: e.train_loss for e in self.evals}
            why = forecast.no_forecast([i for i, _ in points], [v for _, v in points],
                                       [trains.get(i) for i, _ in points], after.eval_interval, end)
            text = Text(f"  val loss at {end:,}: {why}", style="dim")
        else:
            points = eval_points(self.evals)
            last_it, last_val = points[-1]
            text = Text(f"  val loss at {end:,} ≈ {f.val_loss:.3f} ({f.low:.3f}–{f.high:.3f}; "
                        f"schedule-aware fit to {f.n_evals} evals), last eval {last_val:.3f} at {last_it:,}")
            if (rise := forecast.rise_note(f, [i for i, _ in points], [v for _, v in points])) is not None:
                text.append(f"\n  ⚠ {rise}", style="bold yellow")
        self.app.call_from_thread(self._show_forecast, text)

    def _show_forecast(self, text: Text) -> None:
        if self.is_attached:  # the screen may have been dismissed while the fit ran
            self.query_one("#forecast", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return False if self.what_if else True if self.values else None
        return True

    @on(Input.Submitted, "#end")
    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        if self.values and self.after is not None and not self.what_if:
            self.dismiss(ConfigChange(dict(self.values), ApplyAction.LIVE, self.after))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
