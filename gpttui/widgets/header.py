"""The run's identity line: name, device (×N for a job of N processes), parameters, tokens per
iteration, dtype, a note (demo, read-only), run dir.

Before the engine's hello arrives the figures come from the config (derived without torch).
The parameter count is nanoGPT's ("number of parameters: 0.80M", without position embeddings),
in nanoGPT's form, as the doctor and the config editor give it beside the total and
non-embedding counts. At a width that can't hold the dtype's reason ("the CPU's fast path")
with the note after it, the reason goes whole; the run dir comes last and is cut first.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from gpttui.analysis.live import LiveRun
from gpttui.run import config as C
from gpttui.run import sizing

TOOLTIP = ("params: nanoGPT's count (without position embeddings); the doctor (d) gives the total "
           "and the non-embedding counts too")


def params_text(n: int) -> str:
    """nanoGPT's own form: 123_587_328 -> '123.59M', 795_904 -> '0.80M'."""
    return f"{n / 1e6:.2f}M"


def line(name: str, figures: list[tuple[str, str]], dtype: str, reason: str, note: str, run_dir: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" " + name + " ", style="bold reverse")
    for label, value in figures:
        t.append("  ")
        t.append(label, style="dim")
        t.append(value, style="bold")
    if dtype:
        t.append("  ")
        t.append(dtype, style="bold")
    if reason:
        t.append(f" ({reason})", style="bold")
    if note:
        t.append("  " + note, style="italic yellow")
    t.append("  ")
    t.append(run_dir, style="dim")
    return t


class RunHeader(Static):
    _key: tuple | None = None
    _parts: tuple | None = None

    def on_mount(self) -> None:
        self.tooltip = TOOLTIP

    def show(self, live: LiveRun, run_dir: Path, note: str, cfg: C.TrainConfig | None) -> None:
        h = live.hello
        try:
            data_known = bool(h) or cfg is None or bool(cfg.vocab_size) or \
                sizing.data_vocab_size(cfg.resolved_data_dir()) is not None
        except C.ConfigError:   # a meta that can't be read: no vocabulary, so no parameter count
            data_known = False
        key = (id(h), str(run_dir), note, data_known, live.history.params_reported)
        if key == self._key:
            return
        self._key = key
        params = (h.get("params") or {}).get("nanogpt")
        tpi = h.get("tokens_per_iter")
        device, dtype = h.get("device"), h.get("dtype")
        reason = h["dtype_reason"] if dtype and isinstance(h.get("dtype_reason"), str) else ""
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
        if not h and live.history.params_reported:   # a log's own count: the model nanoGPT built (resumed, its shape unsaid)
            params = int(live.history.params_reported)
        figures = [(label, value) for label, value in (
            ("", str(device) if device else ""), ("params ", params_text(params) if params else ""),
            ("tokens/iter ", f"{tpi:,}" if tpi else "")) if value]
        self._parts = (run_dir.name, figures, str(dtype or ""), reason, note, str(run_dir))
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The whole line, or without the dtype's reason when that pushes the note out of `width`."""
        if self._parts is None:
            return
        name, figures, dtype, reason, note, run_dir = self._parts
        width = self.size.width or 10**6
        if reason and line(name, figures, dtype, reason, note, "").cell_len - 2 > width:
            reason = ""
        self.update(line(name, figures, dtype, reason, note, run_dir), layout=False)  # a repaint, not a reflow
