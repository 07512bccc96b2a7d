"""`gpttui train CONFIG|RUN_DIR [--key=value ...]`: headless training with nanoGPT's log lines.

The config is resolved and the run directory checked here, without torch, so bad input fails
in a fraction of a second with one line. Training runs in the engine process (the same one
the dashboard drives): its human log comes out on stdout, its events go to RUN_DIR/metrics.jsonl.
Commands are read from stdin when stdin is not a terminal: `echo '{"cmd":"stop"}' | gpttui train ...`.
Ctrl+C or SIGTERM stops with a checkpoint; a second Ctrl+C abandons the run without one.

`--nproc_per_node=N` (and torchrun's flags for several machines) runs the engine as a torchrun
job. These are flags of the runner, not config keys: they never reach config.toml. The stop
goes to rank 0 as a command on the engine's stdin, never as a signal to torchrun (which would
answer with a traceback of its own), and torchrun's own failure report becomes one line.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Sequence

from gpttui.ipc.process import engine_argv, torchrun_env
from gpttui.run import config as C
from gpttui.run import directory, layout, protocol, sizing

HELP = "train headless, printing nanoGPT's log lines"
OVERRIDES = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="a nanoGPT .py config, a .toml config, or a run directory to resume")
    p.add_argument("--force", action="store_true",
                   help="start from scratch even if out_dir already holds a run (its ckpt.pt is replaced)")
    add_runner_arguments(p)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def add_runner_arguments(p: argparse.ArgumentParser) -> None:
    """torchrun's flags, taken here so that they are never read as config overrides."""
    g = p.add_argument_group("several GPUs (run by torchrun; not config keys)")
    g.add_argument("--nproc_per_node", "--nproc-per-node", type=_positive, default=1, metavar="N",
                   help="processes on this machine, one per GPU")
    g.add_argument("--nnodes", type=_positive, default=1, metavar="N", help="machines in the job")
    g.add_argument("--node_rank", "--node-rank", type=int, metavar="K",
                   help="this machine's place in the job (0 on the --master_addr machine)")
    g.add_argument("--master_addr", "--master-addr", metavar="HOST", help="the address of node 0")
    g.add_argument("--master_port", "--master-port", type=int, metavar="PORT", help="a free port on node 0")
    g.add_argument("--rdzv_endpoint", "--rdzv-endpoint", metavar="HOST:PORT",
                   help="instead of --master_addr/--node_rank: torchrun's c10d rendezvous at HOST:PORT")


def runner_flags(args: argparse.Namespace) -> list[str]:
    """torchrun's command-line flags for these arguments; [] runs the engine as one process."""
    if args.nproc_per_node == 1 and args.nnodes == 1:
        return []
    flags = [f"--nproc_per_node={args.nproc_per_node}", f"--nnodes={args.nnodes}"]
    given = {k: getattr(args, k) for k in ("node_rank", "master_addr", "master_port", "rdzv_endpoint")}
    flags += [f"--{k}={v}" for k, v in given.items() if v is not None]
    if args.rdzv_endpoint:
        flags.append("--rdzv_backend=c10d")
    elif args.nnodes == 1 and args.master_addr is None:
        flags.append("--standalone")  # one machine: torchrun picks a free port itself
    return flags


def world_size(args: argparse.Namespace) -> int:
    return args.nproc_per_node * args.nnodes


def world_size_error(cfg: C.TrainConfig, world: int) -> str | None:
    """What the engine would refuse at set-up about a job of `world` processes, said before it starts."""
    if cfg.gradient_accumulation_steps % world:
        return (f"gradient_accumulation_steps: {cfg.gradient_accumulation_steps} does not divide among "
                f"{world} processes (set it to a multiple of {world})")
    return None


def resolve(target: str, overrides: list[str]) -> C.LoadedConfig:
    """The config to train: a run directory resumes unless --init_from says otherwise. A nanoGPT
    out_dir (ckpt.pt, no config.toml) takes the config nanoGPT saved in its checkpoint."""
    path = Path(target)
    if path.is_dir() and not (path / layout.CONFIG).exists() and (path / layout.CKPT).exists():
        ov = C.parse_overrides(overrides)
        values = {**directory.config_from_checkpoint(path), **ov}
        loaded = C.LoadedConfig(C.build(values), str(path / layout.CKPT), "", ov)
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
        if error := world_size_error(loaded.config, world_size(args)):
            raise C.ConfigError(error)
        cfg, _ = directory.prepare(loaded.config, force=args.force)
    except (C.ConfigError, directory.RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if loaded.source_text and not Path(args.target).is_dir():  # as nanoGPT's configurator does
        print(f"Overriding config with {args.target}:\n{loaded.source_text.rstrip()}")
    for key, value in loaded.overrides.items():
        print(f"Overriding: {key} = {value!r}")
    for warning in sizing.size_mismatches(cfg, loaded.source_text, loaded.source):
        print(f"warning: {warning}", file=sys.stderr)
    return run_engine(Path(cfg.out_dir), runner_flags(args))


class CommandPipe:
    """The engine's stdin, written by two threads: piped commands and our own stop."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            try:
                self.stream.write(line if line.endswith("\n") else line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the engine has exited

    def forward(self, src: IO[str]) -> None:
        """Copy command lines to the engine. Its stdin stays open at the end of ours: to the
        engine a closed command pipe means its UI died, but a finished `echo ... |` is no such thing."""
        try:
            for line in src:
                self.write(line)
        except (OSError, ValueError):
            pass


# torchrun's own log lines, glog style: "W0102 12:00:00.000000 4242 torch/distributed/...py:99] text"
TORCHRUN_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
# what its failure report (re)says about workers, in the one line the user gets instead
SHUTDOWN_NOISE = ("closing signal", "failed (exitcode")
RANK_FAILED = re.compile(r"^error: rank \d+ failed: ")


class EngineOutput:
    """Where each stderr line of the engine goes: its log to our stdout, "error:" and "warning:"
    lines to our stderr, each error once (rank 0 repeats a failed rank's line, and an error every
    rank meets is said by each). Under torchrun, torchrun's failure traceback is held back and
    summarised as one line, if no error was said."""

    def __init__(self, out: IO[str], err: IO[str], torchrun: bool) -> None:
        self.out, self.err = out, err
        self.torchrun = torchrun
        self.errors: set[str] = set()
        self.report: list[str] | None = None  # torchrun's traceback, from its first line

    def line(self, text: str) -> None:
        if self.report is not None:
            self.report.append(text)
            return
        if self.torchrun and text.startswith("Traceback (most recent call last):"):
            self.report = [text]
            return
        if self.torchrun and TORCHRUN_LOG.match(text):
            if not any(s in text for s in SHUTDOWN_NOISE):
                self._write(self.err, text)
            return
        if text.startswith("error:"):
            said = RANK_FAILED.sub("error: ", text)  # "rank 1 failed: X" repeats an "X" said
            if said in self.errors:
                return
            self.errors.add(said)
        self._write(self.err if text.startswith(("error:", "warning:")) else self.out, text)

    def end(self) -> None:
        """The engine has exited: say what torchrun's report says, unless an error was said already."""
        if self.report is not None and not self.errors:
            self._write(self.err, f"error: {summarise_report(self.report)}\n")

    @staticmethod
    def _write(stream: IO[str], text: str) -> None:
        stream.write(text)
        stream.flush()


def summarise_report(lines: Sequence[str]) -> str:
    """One line for torchrun's traceback: the first failed rank and its exit, or its exception."""
    text = "".join(lines)
    cause = text.partition("Root Cause")[2]
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    code = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    if rank and code:
        n = int(code.group(1))
        how = f"was killed by {signal.Signals(-n).name}" if n < 0 and -n in signal.valid_signals() \
            else f"exited with code {n}"
        return f"rank {rank.group(1)} {how}; the job ended"
    exceptions = [ln.strip() for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
    return f"torchrun: {exceptions[-1] if exceptions else lines[-1].strip()}"


def run_engine(run_dir: Path, runner: Sequence[str] = ()) -> int:
    """Run the engine as a child (a torchrun job with `runner`), copy its log to stdout ("error:"
    lines to stderr), return its code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        engine_argv(run_dir, runner=runner), env=torchrun_env(env) if runner else env,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1,
        start_new_session=True,  # Ctrl+C is ours to turn into a clean stop
    )
    assert child.stdin is not None and child.stderr is not None
    pipe = CommandPipe(child.stdin)
    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=pipe.forward, args=(sys.stdin,), daemon=True).start()
    interrupts = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("stopping: saving a checkpoint (Ctrl+C again to quit without one)", file=sys.stderr, flush=True)
            pipe.write(protocol.command("stop"))
        else:
            kill_tree(child.pid)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    output = EngineOutput(sys.stdout, sys.stderr, torchrun=bool(runner))
    try:
        for line in child.stderr:
            output.line(line)
        code = child.wait()
        output.end()
        return code
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants (torchrun starts each worker in a session of its own,
    out of reach of a signal to its process group)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
