"""`gpttui attach RUN_DIR`: the dashboard on an engine that trains detached.

The dashboard reads the run's history from metrics.jsonl, then follows the engine live through
RUN_DIR/engine.sock; every key works as for a run it started. `--status` only says whether an
engine is alive there (pid, state, iteration, heartbeat), for scripts: exit 0 if one is. Without
`--status`, a run with no engine to attach to is refused (exit 2), naming how to resume it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpttui.commands import EXIT_BAD_INPUT, run_app
from gpttui.run import engine_state, layout

HELP = "reconnect the dashboard to a detached running engine"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="the run directory (its out_dir) whose engine trains detached")
    p.add_argument("--status", action="store_true",
                   help="print whether an engine runs there and exit (0: alive, 1: not)")


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / layout.CONFIG).is_file():
        print(f"error: {run_dir}: not a run directory (no {layout.CONFIG})", file=sys.stderr)
        return EXIT_BAD_INPUT
    st = engine_state.status(run_dir)
    if args.status:
        print(st.describe(run_dir))
        return 0 if st.kind == "alive" else 1
    if st.kind != "alive":
        print(f"error: {st.describe(run_dir)}; resume it with `gpttui launch {run_dir}`", file=sys.stderr)
        return EXIT_BAD_INPUT
    from gpttui.app import GpttuiApp, LaunchPlan  # Textual only once there is something to show
    from gpttui.run import config as C

    try:
        loaded = C.load(run_dir)
    except C.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_app(GpttuiApp(LaunchPlan(run_dir, loaded, start=False, attach=True)))
