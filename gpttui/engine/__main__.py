"""`python -m gpttui.engine RUN_DIR [--key=value ...]`: the engine process.

Reads RUN_DIR/config.toml (plus overrides, which are written back so a resume keeps them),
trains, speaks the protocol: events on stdout, human log on stderr, commands on stdin.
Under `torchrun` every process runs this; rank 0 alone talks.
Rank 0 also holds the run directory's lock and serves its control socket (engine/host.py):
a second engine on the same directory exits with code 3 and says how to attach instead.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from gpttui import config as C
from gpttui import protocol, rundir
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

    master = os.environ.get("RANK", "0") == "0"
    if master:
        from gpttui.engine import signals

        signals.block()  # before torch or any thread starts
    from gpttui.engine.channel import Channel, CommandReader  # torch-free, but engine-only
    from gpttui.engine.trainer import Dist, Trainer

    dist = Dist.from_env()
    host = None
    if dist.master:
        from gpttui.engine.host import EngineHost, stdin_is_pipe
        from gpttui.runstate import RunLocked

        host = EngineHost(run_dir, lambda cmd: commands.push(cmd))
        try:
            host.start()
        except RunLocked as e:  # write nothing into a directory another engine owns
            sys.stdout.write(protocol.encode(protocol.event("error", 0, message=str(e))))
            print(f"error: {e}", file=sys.stderr)
            return 3
        lost = host.ui_lost
        chan = Channel(run_dir, sys.stdout.buffer, sys.stderr.buffer,
                       on_broken=lambda: lost("the UI went away (its event pipe broke)", broken=True),
                       on_disk_full=lambda e: commands.push(Command("disk_full", {
                           "what": "metrics.jsonl", "error": e.strerror or str(e)})))
        chan.listeners.append(host.listener)
        commands = CommandReader(sys.stdin, on_eof=(lambda: lost("the UI went away (its command pipe closed)"))
                                 if stdin_is_pipe() else None)

        # Ctrl+C or SIGTERM: checkpoint, then exit (other ranks follow the broadcast stop);
        # a second signal ends the process at once, the last complete checkpoint standing
        signals.watch(lambda sig: commands.push(Command("stop", {})))
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
        if host is not None:
            host.close(2)
        return 2
    code = 1
    try:
        code = Trainer(cfg, run_dir, chan, commands, dist).run()
        return code
    finally:
        chan.close()
        if host is not None:
            host.close(code)


if __name__ == "__main__":
    sys.exit(main())
