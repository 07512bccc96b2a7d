"""`gpttui train CONFIG|RUN_DIR [--key=value ...]`: headless training with nanoGPT's log lines.

The config is resolved and the run directory checked here, without torch, so bad input fails
in a fraction of a second with one line. Training runs in the engine process (the same one
the dashboard drives): its human log comes out on stdout, its events go to RUN_DIR/metrics.jsonl.
Commands are read from stdin when stdin is not a terminal: `echo '{"cmd":"stop"}' | gpttui train ...`.
Ctrl+C or SIGTERM stops with a checkpoint; a second Ctrl+C abandons the run without one.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from gpttui import config as C
from gpttui import rundir

HELP = "train headless, printing nanoGPT's log lines"
OVERRIDES = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="a nanoGPT .py config, a .toml config, or a run directory to resume")
    p.add_argument("--force", action="store_true",
                   help="start from scratch even if out_dir already holds a run (its ckpt.pt is replaced)")


def resolve(target: str, overrides: list[str]) -> C.LoadedConfig:
    """The config to train: a run directory resumes unless --init_from says otherwise. A nanoGPT
    out_dir (ckpt.pt, no config.toml) takes the config nanoGPT saved in its checkpoint."""
    path = Path(target)
    if path.is_dir() and not (path / rundir.CONFIG).exists() and (path / rundir.CKPT).exists():
        ov = C.parse_overrides(overrides)
        values = {**rundir.config_from_checkpoint(path), **ov}
        loaded = C.LoadedConfig(C.build(values), str(path / rundir.CKPT), "", ov)
    else:
        loaded = C.load(path, overrides)
    if path.is_dir():
        changes: dict[str, Any] = {"out_dir": str(path)}
        if "init_from" not in loaded.overrides:
            changes["init_from"] = "resume"
        loaded.config = C.replace(loaded.config, **changes)
    return loaded


def run(args: argparse.Namespace) -> int:
    try:
        loaded = resolve(args.target, args.overrides)
        cfg, _ = rundir.prepare(loaded.config, force=args.force)
    except (C.ConfigError, rundir.RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if loaded.source_text and not Path(args.target).is_dir():  # as nanoGPT's configurator does
        print(f"Overriding config with {args.target}:\n{loaded.source_text.rstrip()}")
    for key, value in loaded.overrides.items():
        print(f"Overriding: {key} = {value!r}")
    for warning in C.size_mismatches(cfg, loaded.source_text, loaded.source):
        print(f"warning: {warning}", file=sys.stderr)
    return run_engine(Path(cfg.out_dir))


def forward_commands(src: IO[str], dst: IO[str]) -> None:
    """Copy command lines to the engine. The engine's stdin stays open at the end of ours: to the
    engine a closed command pipe means its UI died, but a finished `echo ... |` is no such thing."""
    try:
        for line in src:
            dst.write(line)
            dst.flush()
    except (OSError, ValueError):
        pass  # the engine has exited


def run_engine(run_dir: Path) -> int:
    """Run the engine as a child, copy its log to stdout ("error:" lines to stderr), return its code."""
    forward = sys.stdin is not None and not sys.stdin.isatty()
    child = subprocess.Popen(
        [sys.executable, "-u", "-m", "gpttui.engine", str(run_dir)],
        stdin=subprocess.PIPE if forward else subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, bufsize=1,
        start_new_session=True,  # Ctrl+C is ours to turn into a clean stop
    )
    if forward:
        threading.Thread(target=forward_commands, args=(sys.stdin, child.stdin), daemon=True).start()
    interrupts = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("stopping: saving a checkpoint (Ctrl+C again to quit without one)", file=sys.stderr, flush=True)
            child.send_signal(signal.SIGTERM)
        else:
            child.kill()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert child.stderr is not None
        for line in child.stderr:
            out = sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout
            out.write(line)
            out.flush()
        return child.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
