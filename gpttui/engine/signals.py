"""Ctrl+C / SIGTERM for the engine: the first stops with a checkpoint, a second kills at once.

A Python signal handler only runs when the main thread returns to the interpreter, so two
signals arriving while it sits in a long C call (torch.save of a large checkpoint) would both
wait for it, and the second could not cut the save short. Instead the signals are blocked in
every thread (before torch starts any) and one watcher thread takes them with sigwait.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

SIGNALS = {signal.SIGINT, signal.SIGTERM}


def block() -> None:
    """Call first thing in the process: threads started afterwards inherit the mask."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # what the second signal does, once unblocked
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def watch(on_first: Callable[[int], None]) -> threading.Thread:
    """Start the watcher: `on_first(sig)` for the first signal; the second ends the process."""

    def run() -> None:
        on_first(signal.sigwait(SIGNALS))
        sig = signal.sigwait(SIGNALS)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        signal.pthread_kill(threading.get_ident(), sig)  # default action: the process ends

    t = threading.Thread(target=run, name="gpttui-signals", daemon=True)
    t.start()
    return t
