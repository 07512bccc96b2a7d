"""`python -m gpttui.engine RUN_DIR [--key=value ...]`: the engine process.

Reads RUN_DIR/config.toml (plus overrides, which are written back so a resume keeps them),
trains, speaks the protocol: events on stdout, human log on stderr, commands on stdin.
Under `torchrun` every process runs this; rank 0 alone talks.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from gpttui import config as C
from gpttui import rundir
from gpttui.protocol import Command

USAGE = "usage: python -m gpttui.engine RUN_DIR [--key=value ...]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    if not (run_dir / rundir.CONFIG).is_file():
        print(f"error: {run_dir}: not a run directory (no {rundir.CONFIG})", file=sys.stderr)
        return 2

    from gpttui.engine.channel import Channel, CommandReader  # torch-free, but engine-only
    from gpttui.engine.trainer import Dist, Trainer

    dist = Dist.from_env()
    if dist.master:
        chan = Channel(run_dir, sys.stdout.buffer, sys.stderr.buffer)
        commands = CommandReader(sys.stdin)
        # Ctrl+C or SIGTERM: checkpoint, then exit (other ranks follow the broadcast stop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: commands.push(Command("stop", {})))
    else:
        chan, commands = Channel(None), None
        # rank 0 takes the signal and broadcasts a stop; dying here would strand its broadcast
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
    try:
        loaded = C.load(run_dir, argv[1:])
        cfg = C.replace(loaded.config, out_dir=str(run_dir))
        if loaded.overrides and dist.master:
            C.check(cfg)
            rundir.write_config(cfg, run_dir)
    except C.ConfigError as e:
        chan.emit("error", 0, message=str(e))
        chan.log(f"error: {e}")
        chan.emit("state", 0, state="failed", reason=str(e))
        chan.close()
        return 2
    try:
        return Trainer(cfg, run_dir, chan, commands, dist).run()
    finally:
        chan.close()


if __name__ == "__main__":
    sys.exit(main())
