"""The status line: state, iteration of max with a bar, tokens seen, elapsed, ETA.

It fits its width by giving up the least needed first (the elapsed time, the tokens, then the
bar's length, then the bar): the state, the iteration and the ETA stay at 80 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from gpttui.analysis.live import LiveRun
from gpttui.widgets import fmt
from gpttui.widgets.system import machine_of

STATE_STYLE = {
    "starting": "bold black on grey70", "running": "bold black on green",
    "paused": "bold black on yellow", "evaluating": "bold black on cyan",
    "saving": "bold white on blue", "finished": "bold black on bright_green",
    "stopped": "bold white on magenta", "failed": "bold white on red",
}
ETA_STATES = ("running", "paused", "evaluating", "saving", "starting")
BAR = 20
MIN_BAR = 6


def bar(done: int, total: int | None, width: int = BAR) -> Text:
    frac = min(1.0, done / total) if total else 0.0
    full = int(frac * width)
    t = Text("━" * full, style="green")
    t.append("━" * (width - full), style="grey35")
    return t


@dataclass
class Figures:
    """What the line says, before it is fitted to a width."""

    state: str
    pending: str
    iter: int
    total: int | None
    tokens: str
    elapsed: str
    eta: str | None   # None: not shown in this state


def line(f: Figures, bar_width: int = BAR, tokens: bool = True, elapsed: bool = True) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f" {f.state} ", style=STATE_STYLE.get(f.state, "reverse"))
    if f.pending:
        t.append(f" {f.pending}", style="italic yellow")
    t.append("  iter ", style="dim")
    t.append(f"{f.iter:,}", style="bold")
    t.append(f"/{f.total:,}" if f.total else "")
    if bar_width:
        t.append(" ")
        t.append_text(bar(f.iter, f.total, bar_width))
    if f.total:
        t.append(f" {100 * min(1.0, f.iter / f.total):.0f}%")
    if tokens:
        t.append("  tokens ", style="dim")
        t.append(f.tokens)
    if elapsed:
        t.append("  elapsed ", style="dim")
        t.append(f.elapsed)
    if f.eta is not None:
        t.append("  ETA ", style="dim")
        t.append(f.eta)
    return t


def fitted(f: Figures, width: int) -> Text:
    """The fullest form of the line that fits `width` cells (the shortest one if none does)."""
    full = line(f)
    if full.cell_len <= width:
        return full
    lean = line(f, bar_width=0, tokens=False, elapsed=False)
    for tokens, elapsed in ((True, True), (True, False), (False, False)):   # a shorter bar first, then fewer figures
        room = min(BAR, BAR - (line(f, tokens=tokens, elapsed=elapsed).cell_len - width))
        if room >= MIN_BAR:
            return line(f, bar_width=room, tokens=tokens, elapsed=elapsed)
    return lean


class StatusLine(Static):
    _figures: Figures | None = None

    def show(self, live: LiveRun, state: str, pending: str = "") -> None:
        now = machine_of(self).clock()   # what "now" is for the elapsed time
        elapsed = fmt.duration(live.elapsed(now))   # training time; the time stopped or paused apart:
        idle = [f"{fmt.duration(s)} {what}" for s, what in
                ((live.stopped_s, "stopped"), (live.paused_for(now), "on pause")) if s >= 1]
        if idle:
            elapsed += f" (+{', '.join(idle)})"
        # nanoGPT trains iteration max_iters too (0..max_iters), so a finished log is one past it
        # in iterations done: the bar shows the iteration the log ends on, as its last line does
        shown = max(live.iter - 1, 0) if live.history.kind == "nanogpt-log" else live.iter
        self._figures = Figures(
            state, pending, shown, live.max_iters, fmt.count(live.tokens),
            elapsed, fmt.duration(live.eta()) if state in ETA_STATES else None)
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        if self._figures is not None:
            self.update(fitted(self._figures, self.size.width or 10**6), layout=False)  # a repaint, not a reflow
