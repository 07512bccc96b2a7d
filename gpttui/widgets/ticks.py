"""Axis ticks the charts set explicitly: round values (1-2-5 steps) with short labels.

plotext's own ticks split the range evenly (`0.0e0 2.0e2 4.1e2`, `1164.0 1196.8`); these are
the values a person would pick: iterations and tokens as integers or with K/M/B, run time in
s/m/h/d, losses with as many decimals as the step needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# steps for a run-time axis, in seconds: whole seconds, minutes, hours, days
TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


@dataclass
class Ticks:
    values: list[float]
    labels: list[str]


def nice_step(span: float, target: int) -> float:
    """The 1, 2 or 5 times a power of ten nearest to cutting `span` into `target` pieces."""
    raw = span / max(1, target)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    error = raw / power  # in [1, 10): round it to 1, 2, 5 or 10 (geometric midpoints, as d3 does)
    factor = 10 if error >= math.sqrt(50) else 5 if error >= math.sqrt(10) else 2 if error >= math.sqrt(2) else 1
    return factor * power


def multiples(lo: float, hi: float, step: float) -> list[float]:
    """Multiples of `step` in [lo, hi], rounded so they print as the round numbers they are."""
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(k * step, digits) for k in range(first, last + 1)]


def count_labels(values: list[float], step: float) -> list[str]:
    """One unit for every tick: plain integers below 10,000 (1164, 1170), else K/M/B/T with at
    most one decimal (2.5M, 14.4M); plain integers again when the step is finer than that."""
    top = max((abs(v) for v in values), default=0.0)
    unit, suffix = 1.0, ""
    if top >= 10_000:
        unit, suffix = next(((u, s) for u, s in UNITS if top >= u and step >= u / 10), (1.0, ""))
    digits = 1 if step < unit else 0
    return [f"{v / unit:.{digits}f}".removesuffix(".0") + (suffix if v else "") for v in values]


def time_label(seconds: float, step: float) -> str:
    """Run time down to the step's unit: 90 -> '1m30s', 5400 -> '1h30m', 97200 -> '1d03h'."""
    if step < 1:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s == 0:
        return "0"
    d, h, m, sec = s // 86400, s % 86400 // 3600, s % 3600 // 60, s % 60
    parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")]
    finest = 3 if step < 60 else 2 if step < 3600 else 1 if step < 86400 else 0
    first = min(next((i for i, (n, _) in enumerate(parts) if n), finest), finest)
    last = max(i for i in range(first, finest + 1) if parts[i][0] or i == first)  # no trailing zeros
    return f"{parts[first][0]}{parts[first][1]}" + "".join(f"{n:02d}{u}" for n, u in parts[first + 1:last + 1])


def count_ticks(lo: float, hi: float, target: int) -> Ticks:
    """Iterations or tokens: integer steps, labelled 800, 1200, 20K, 2.5M, 3B."""
    if hi <= lo:
        return Ticks([lo], count_labels([lo], 1.0))
    step = max(1.0, nice_step(hi - lo, target))
    values = multiples(lo, hi, step)
    return Ticks(values, count_labels(values, step))


def time_ticks(lo: float, hi: float, target: int) -> Ticks:
    """Run time in seconds, at whole seconds, minutes, hours or days."""
    if hi <= lo:
        return Ticks([lo], [time_label(lo, 1.0)])
    raw = (hi - lo) / max(1, target)
    step = next((float(s) for s in TIME_STEPS if s >= raw * 0.999), None)
    if step is None:  # longer than days: whole days in 1-2-5 steps
        step = 86400 * nice_step((hi - lo) / 86400, target)
    values = multiples(lo, hi, step)
    return Ticks(values, [time_label(v, step) for v in values])


def axis_ticks(axis: str, lo: float, hi: float, target: int) -> Ticks:
    """Ticks for a chart's x axis: 'iter', 'tokens' or 'time'."""
    return time_ticks(lo, hi, target) if axis == "time" else count_ticks(lo, hi, target)


def decimal_ticks(lo: float, hi: float, target: int) -> Ticks:
    """A value axis (loss, lr): as many decimals as the step needs, none more."""
    if hi <= lo:
        return Ticks([lo], [_decimal(lo, abs(lo) / 10 or 1.0)])
    step = nice_step(hi - lo, target)
    values = multiples(lo, hi, step)
    return Ticks(values, [_decimal(v, step) for v in values])


def log_ticks(lo: float, hi: float, target: int) -> Ticks:
    """Ticks for a log axis, at 1, 2 and 5 times powers of ten (positions are the values, not
    their logarithms); a range too narrow for those gets linear ones."""
    if lo <= 0 or hi <= lo:
        return decimal_ticks(lo, hi, target)
    values: list[float] = []
    for mults in ((1,), (1, 5), (1, 2, 5), (1, 2, 3, 5, 7)):
        values = [m * 10.0 ** p for p in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                  for m in mults if lo <= m * 10.0 ** p <= hi]
        if len(values) >= min(3, target):
            break
    if len(values) < 2:
        return decimal_ticks(lo, hi, target)
    if len(values) > target:
        values = values[:: math.ceil(len(values) / target)]
    return Ticks(values, [_decimal(v, v) for v in values])


def _decimal(v: float, step: float) -> str:
    if v == 0 and step < 1e-3:
        return "0"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):  # an lr: 3e-4, 2.5e-5
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return f"{v:.{digits}f}"
