"""`python -m gpttui.engine RUN_DIR [--key=value ...]`: the engine process.

Reads RUN_DIR/config.toml (plus overrides, which are written back once set-up has accepted
them, so a resume keeps them), trains, speaks the protocol: events on stdout, human log on
stderr, commands on stdin. A start refused before training (exit 2: the config, checkpoint, data
or device) leaves the run's files as they were (engine/host.py).
Under `torchrun` every process runs this; rank 0 alone talks: the other ranks read nothing
from stdin and write their own errors only, to stderr.
Rank 0 also holds the run directory's lock and serves its control socket (engine/host.py):
a second engine on the same directory exits with code 3 and says how to attach instead.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from gpttui.run import config as C
from gpttui.run import layout, protocol
from gpttui.run.protocol import Command

USAGE = "usage: python -m gpttui.engine RUN_DIR [--key=value ...]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    if not (run_dir / layout.CONFIG).is_file():
        print(f"error: {run_dir}: not a run directory (no {layout.CONFIG})", file=sys.stderr)
        return 2

    from gpttui.engine import signals

    signals.block()  # before torch or any thread starts
    if os.environ.get("RANK", "0") != "0":
        keep_off_the_pipes()
    from gpttui.engine.channel import Channel, CommandReader  # torch-free, but engine-only
    from gpttui.engine.trainer import EXIT_REFUSED, Dist, Trainer

    dist = Dist.from_env()
    host = None
    trainer: Trainer | None = None
    if dist.master:
        from gpttui.engine.host import EngineHost, stdin_is_pipe
        from gpttui.run.engine_state import RunLocked

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
    else:
        chan, commands = Channel(None), None

    closing = threading.Lock()
    closed = False

    def close(code: int, exit_now: bool) -> None:
        """Flush the events and release the run directory, once, though the main thread and the
        signal watcher may both get here; `exit_now`: end the process inside (the other waits)."""
        nonlocal closed
        with closing:
            if not closed:
                closed = True
                chan.close()
                if host is not None:
                    host.close(code, refused=code == EXIT_REFUSED)
            if exit_now:
                # the process group of a failed job may keep threads bound to a dead peer; torch's
                # destructors at interpreter exit then abort ("terminate called ..."): skip them
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)

    def on_signal(sig: int) -> None:
        """The first SIGINT or SIGTERM. Rank 0 checkpoints, then exits (the other ranks follow
        its broadcast stop: they do nothing here). But when a rank has failed, torchrun is ending
        the job and this process may wait forever in a collective the failed rank will never join:
        then the failure is reported now and the process ends. A second signal ends the process at
        once, the last complete checkpoint standing."""
        failed = trainer.lost_rank() if trainer is not None else None
        if trainer is None or failed is None:
            if commands is not None:
                commands.push(Command("stop", {}))
            return
        if trainer.finish(failed):
            close(1, exit_now=True)

    signals.watch(on_signal)
    try:
        loaded = C.load(run_dir, argv[1:])
        cfg = C.replace(loaded.config, out_dir=str(run_dir))
        C.check(cfg)
    except C.ConfigError as e:
        chan.emit("error", 0, message=str(e))
        chan.log(f"error: {e}")
        chan.emit("state", 0, state="failed", reason=str(e))
        close(EXIT_REFUSED, exit_now=False)
        return EXIT_REFUSED
    code = 1
    try:
        trainer = Trainer(cfg, run_dir, chan, commands, dist, config_unsaved=bool(loaded.overrides))
        code = trainer.run()
    finally:
        # a job's process group can leave gloo threads that abort the interpreter's exit (seen on
        # a finished job's rank 1 too: SIGABRT, the job reported failed): every rank of a job ends here
        close(code, exit_now=dist.ddp)
    return code


def keep_off_the_pipes() -> None:
    """For ranks other than 0: stdin from /dev/null (the UI's commands are rank 0's to read) and
    stdout into stderr (stdout is rank 0's event stream), whatever a library may print."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)


if __name__ == "__main__":
    sys.exit(main())
