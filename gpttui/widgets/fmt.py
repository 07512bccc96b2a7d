"""Short human forms of the dashboard's figures, "—" for one not known yet; counts and durations
in the formats the CLI uses too (gpttui.run.units)."""

from __future__ import annotations

import math

from gpttui.run.units import human_count, human_duration


def duration(seconds: float | None) -> str:
    """62 -> '1m 02s'; None -> '—'."""
    return "—" if seconds is None or not math.isfinite(seconds) else human_duration(seconds)


def count(n: float | None, digits: int = 1) -> str:
    """3.1e9 -> '3.1B', 950 -> '950'; None -> '—'."""
    if n is None or not math.isfinite(n):
        return "—"
    return human_count(n, digits) if abs(n) >= 1000 else f"{n:.0f}"


def loss(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4f}"


def percent(v: float | None) -> str:
    """A fraction as a percentage that keeps a small one readable: 0.1366 -> '13.7%', 0.0003 -> '0.03%'
    (a CPU's MFU), below a hundredth of a percent '<0.01%'."""
    if v is None or not math.isfinite(v):
        return "—"
    x = 100 * v
    if x == 0 or abs(x) >= 1:
        return f"{x:.1f}%"
    return f"{x:.2f}%" if abs(x) >= 0.01 else "<0.01%"


def number(v: float | None) -> str:
    """A compact figure for a sparkline caption, 3 significant digits: 0.412, 6.00e-4."""
    if v is None or not math.isfinite(v):
        return "—"
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e5):
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{v:.3g}"


def elide(text: str, width: int) -> str:
    """`text` cut to `width` cells at a word boundary, with '…' where it was cut."""
    if len(text) <= width:
        return text
    if width < 1:
        return ""
    words, kept = text.split(" "), ""
    for word in words:
        longer = f"{kept} {word}" if kept else word
        if len(longer.rstrip(",;:")) + 1 > width:
            break
        kept = longer
    return kept.rstrip(",;:") + "…" if kept else text[:width - 1] + "…"
