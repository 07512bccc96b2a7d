"""The status line: state, iteration of max with a bar, tokens seen, elapsed, ETA."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from gpttui.analysis.live import LiveRun
from gpttui.widgets import fmt

STATE_STYLE = {
    "starting": "bold black on grey70", "running": "bold black on green",
    "paused": "bold black on yellow", "evaluating": "bold black on cyan",
    "saving": "bold white on blue", "finished": "bold black on bright_green",
    "stopped": "bold white on magenta", "failed": "bold white on red",
}
BAR = 20


def bar(done: int, total: int | None, width: int = BAR) -> Text:
    frac = min(1.0, done / total) if total else 0.0
    full = int(frac * width)
    t = Text("━" * full, style="green")
    t.append("━" * (width - full), style="grey35")
    return t


class StatusLine(Static):
    def show(self, live: LiveRun, state: str, pending: str = "") -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {state} ", style=STATE_STYLE.get(state, "reverse"))
        if pending:
            t.append(f" {pending}", style="italic yellow")
        total = live.max_iters
        t.append("  iter ", style="dim")
        t.append(f"{live.iter:,}", style="bold")
        t.append(f"/{total:,} " if total else " ")
        t.append_text(bar(live.iter, total))
        if total:
            t.append(f" {100 * min(1.0, live.iter / total):.0f}%")
        t.append("  tokens ", style="dim")
        t.append(fmt.count(live.tokens))
        t.append("  elapsed ", style="dim")
        t.append(fmt.duration(live.elapsed(time.time())))
        if state in ("running", "paused", "evaluating", "saving", "starting"):
            t.append("  ETA ", style="dim")
            t.append(fmt.duration(live.eta()))
        self.update(t, layout=False)  # fixed size: a repaint, not a reflow
