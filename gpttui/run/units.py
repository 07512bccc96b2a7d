"""Human forms of counts, sizes and durations: one format each, for the CLI and the UI alike."""

from __future__ import annotations

import time

YEAR = 31_557_600   # seconds in a Julian year


def human_count(n: float, digits: int = 2) -> str:
    """123587328 -> '123.59M', 3.1e9 -> '3.10B'."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """3 * 2**30 -> '3.0 GiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def human_duration(seconds: float) -> str:
    """47 -> '47s', 754 -> '12m 34s', 47000 -> '13h 03m', 200000 -> '2d 07h', 4e8 -> '12y 246d': two units at most."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s < YEAR:
        return f"{s // 86400}d {s % 86400 // 3600:02d}h"
    return f"{s // YEAR:,}y {s % YEAR // 86400}d"


def finish_time(seconds: float, now: float) -> str:
    """When a job `seconds` from `now` (Unix time) ends, in local time: 'Sun 14:05' within the week,
    '12 Mar 2027' beyond it, 'not in this millennium' past what a clock can say."""
    try:
        when = time.localtime(now + seconds)
    except (OverflowError, OSError, ValueError):
        return "not in this millennium"
    return time.strftime("%a %H:%M" if seconds < 6 * 86400 else "%d %b %Y", when)
