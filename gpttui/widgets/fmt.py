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


def number(v: float | None) -> str:
    """A compact figure for a sparkline caption, 3 significant digits: 0.412, 6.00e-4."""
    if v is None or not math.isfinite(v):
        return "—"
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e5):
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{v:.3g}"
