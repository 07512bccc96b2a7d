"""The `gpttui` console script and `python -m gpttui`.

Kept tiny and importing nothing of gpttui at module level: the CLI's imports (and the chosen
command's) take a noticeable moment, and a Ctrl+C landing in them would otherwise print Python's
KeyboardInterrupt traceback before any command could catch it. Here it exits 130 quietly, as
every other interrupt does.
"""

from __future__ import annotations

import signal


def main() -> int:
    try:
        from gpttui.cli import main as run_cli

        code = run_cli()
    except KeyboardInterrupt:
        code = 130  # 128 + SIGINT, as a shell reports it
    # The work is over: Ctrl+C pressed again on the way out would print a traceback from Python's
    # shutdown or kill the process by the signal instead of exiting with `code`, so it is ignored
    # from here. A press already pending is raised by signal.signal itself, hence the retry.
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            return code
        except KeyboardInterrupt:
            pass
