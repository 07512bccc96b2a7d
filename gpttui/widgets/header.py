"""The run's identity line: name, device (×N for a job of N processes), parameters, tokens per
iteration, dtype, run dir.

Before the engine's hello arrives the figures come from the config (derived without torch).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from gpttui.analysis.live import LiveRun
from gpttui.run import config as C
from gpttui.run import sizing
from gpttui.widgets import fmt


class RunHeader(Static):
    _key: tuple | None = None

    def show(self, live: LiveRun, run_dir: Path, note: str, cfg: C.TrainConfig | None) -> None:
        h = live.hello
        data_known = bool(h) or cfg is None or bool(cfg.vocab_size) or \
            sizing.data_vocab_size(cfg.resolved_data_dir()) is not None
        key = (id(h), str(run_dir), note, data_known)
        if key == self._key:
            return
        self._key = key
        params = (h.get("params") or {}).get("nanogpt")
        tpi = h.get("tokens_per_iter")
        device, dtype = h.get("device"), h.get("dtype")
        if dtype and isinstance(h.get("dtype_reason"), str) and h["dtype_reason"]:
            dtype = f"{dtype} ({h['dtype_reason']})"
        if device and device != "cpu" and h.get("device_name"):
            device = h["device_name"]  # "NVIDIA GeForce RTX 4070" says more than "cuda:0"
        if device and (h.get("world_size") or 1) > 1:
            device = f"{device} ×{h['world_size']}"  # processes of a torchrun job, one per GPU
        if not h and cfg is not None:  # not started yet: what the config implies
            device, dtype = cfg.device, cfg.dtype
            try:
                d = sizing.derive(cfg)
                tpi = d.tokens_per_iter
                params = d.params_nanogpt if data_known else None  # the vocabulary comes with the data
            except (OSError, ValueError):
                pass
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" " + run_dir.name + " ", style="bold reverse")
        for label, value in (("", device), ("params ", fmt.count(params, 2) if params else None),
                             ("tokens/iter ", f"{tpi:,}" if tpi else None), ("", dtype)):
            if value:
                t.append("  ")
                t.append(label, style="dim")
                t.append(str(value), style="bold")
        if note:
            t.append("  " + note, style="italic yellow")
        t.append("  ")
        t.append(str(run_dir), style="dim")
        self.update(t, layout=False)  # fixed size: a repaint, not a reflow
