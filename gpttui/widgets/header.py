"""The run's identity line: name, device, parameters, tokens per iteration, dtype, run dir."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from gpttui.liverun import LiveRun
from gpttui.widgets import fmt


class RunHeader(Static):
    def show(self, live: LiveRun, run_dir: Path, note: str = "") -> None:
        h = live.hello
        params = (h.get("params") or {}).get("nanogpt") or (h.get("params") or {}).get("total")
        tpi = live.history.tokens_per_iter
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" " + run_dir.name + " ", style="bold reverse")
        for label, value in (("", h.get("device")), ("params ", fmt.count(params, 2) if params else None),
                             ("tokens/iter ", f"{tpi:,}" if tpi else None), ("", h.get("dtype"))):
            if value:
                t.append("  ")
                t.append(label, style="dim")
                t.append(str(value), style="bold")
        if note:
            t.append("  " + note, style="italic yellow")
        t.append("  ")
        t.append(str(run_dir), style="dim")
        self.update(t)
