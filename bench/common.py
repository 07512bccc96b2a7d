"""What several bench scripts share: character data the way users make it, per-call timing
of a loop that runs flat out, and the median time of a call. (Bench scripts run as `python bench/NAME.py`, so this directory is
on sys.path; they cannot import tests/.)"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

from gpttui.data.prepare import prepare

SHAKESPEARE = Path(__file__).resolve().parents[1] / "gpttui" / "assets" / "tinyshakespeare.txt"


def char_data(out: Path, n_chars: int | None = None) -> Path:
    """train.bin / val.bin / meta.pkl of tiny Shakespeare (its first `n_chars` characters), as
    `gpttui prepare --tokenizer char` writes them (nanoGPT's shakespeare_char format)."""
    text = SHAKESPEARE
    if n_chars is not None:
        text = out.with_name(out.name + ".txt")
        text.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:n_chars], encoding="utf-8")
    prepare([text], out, tokenizer="char", workers=1)
    return out


def per_call_windows(seconds: float, window: float, call: Callable[[int], None],
                     after_window: Callable[[], None] = lambda: None) -> tuple[list[float], int]:
    """Run call(0), call(1), ... flat out for `seconds`: the mean seconds per call in each
    `window`-second slice (a median of those ignores a stray pause), and how many calls ran."""
    windows: list[float] = []
    n = 0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        k = 0
        while time.perf_counter() - t0 < window:
            call(n)
            n += 1
            k += 1
        windows.append((time.perf_counter() - t0) / k)
        after_window()
    return windows, n


def median_time(fn: Callable[[], object], runs: int) -> float:
    """The median seconds of `runs` calls of fn (a median ignores a stray pause on a shared machine)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
