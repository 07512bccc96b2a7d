"""Short human forms of the dashboard's figures."""

from __future__ import annotations

import math

from gpttui.run.config import human_count


def duration(seconds: float | None) -> str:
    """62 -> '1m02s', 3725 -> '1h02m', 2 days -> '2d03h'; None -> '—'."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def count(n: float | None, digits: int = 1) -> str:
    """3.1e9 -> '3.1B', 950 -> '950'; None -> '—'."""
    if n is None or not math.isfinite(n):
        return "—"
    return human_count(n, digits) if abs(n) >= 1000 else f"{n:.0f}"


def loss(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4f}"


def number(v: float | None) -> str:
    """A compact figure for a sparkline caption: 3 significant digits."""
    if v is None or not math.isfinite(v):
        return "—"
    if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.3g}"
