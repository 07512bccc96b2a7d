"""`gpttui train [CONFIG|RUN_DIR] [--key=value ...]`: headless training with nanoGPT's log lines.

With no target it is nanoGPT's `python train.py --key=value ...`: nanoGPT's defaults plus the
flags (out_dir from --out_dir, data from data/<dataset> under the current directory or --data_dir).

The config is resolved and the run directory checked here, without torch, so bad input fails
in a fraction of a second with one line. Training runs in the engine process (the same one
the dashboard drives): its human log comes out on stdout, its events go to RUN_DIR/metrics.jsonl.
Commands are read from stdin when stdin is not a terminal: `echo '{"cmd":"stop"}' | gpttui train ...`.
Ctrl+C or SIGTERM stops with a checkpoint and exits 130 (143 for SIGTERM), so that `gpttui train
... && next` goes no further; a second Ctrl+C abandons the run without one. A stop whose checkpoint
could not be written exits 1 (130 / 143 still after Ctrl+C / SIGTERM), its one error line naming
the weights not saved, why, and the checkpoint kept.
An engine that dies on a signal (kill -9, the out-of-memory killer, a native crash) is said in
one line with the signal, the iteration and the last checkpoint, then the end of engine.log;
the exit code is 128 + the signal's number.

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

from gpttui.commands import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_SIGNAL_BASE
from gpttui.fs.lock import FileLock
from gpttui.ipc.process import engine_argv, torchrun_env
from gpttui.run import config as C
from gpttui.run import directory, engine_state, layout, protocol, sizing

HELP = "train headless, printing nanoGPT's log lines"
OVERRIDES = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?",
                   help="a nanoGPT .py config, a .toml config, or a run directory to resume "
                        "(none: nanoGPT's defaults plus the --key=value flags, as `python train.py`)")
    p.add_argument("--force", action="store_true",
                   help="start from scratch even if out_dir already holds a run (its ckpt.pt is replaced)")
    add_runner_arguments(p)
    p.epilog = ("Config overrides, nanoGPT style: --key=value (--dataset=shakespeare_char --n_layer=4 "
                "--out_dir=out-x). Exit codes: 0 done (max_iters reached, or stopped by a command on stdin), "
                "1 failed (a stop's checkpoint not written included), 2 refused input, 3 an engine already "
                "trains there, 130 stopped by Ctrl+C (143: SIGTERM; a checkpoint saved, or quit without one on "
                "a second), 128+N the engine was killed by signal N.")


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


def replaced_run(cfg: C.TrainConfig) -> str | None:
    """What a new start in cfg.out_dir (from scratch or pretrained weights) replaces, or None when
    it holds no run."""
    rd = Path(cfg.out_dir)
    if cfg.init_from == "resume" or not (rd / layout.CKPT).is_file():
        return None
    return (f"replacing the run in {rd} ({directory.describe_run(rd)}): the new run's checkpoints "
            f"overwrite it and its metrics.jsonl continues with the new run")


def world_size(args: argparse.Namespace) -> int:
    return args.nproc_per_node * args.nnodes


def world_size_error(cfg: C.TrainConfig, world: int) -> str | None:
    """What the engine would refuse at set-up about a job of `world` processes, said before it starts."""
    if cfg.gradient_accumulation_steps % world:
        return (f"gradient_accumulation_steps: {cfg.gradient_accumulation_steps} does not divide among "
                f"{world} processes (set it to a multiple of {world}: --gradient_accumulation_steps={world})")
    return None


def resolve(target: str | None, overrides: list[str]) -> C.LoadedConfig:
    """The config to train: a run directory resumes unless --init_from says otherwise. A nanoGPT
    out_dir (ckpt.pt, no config.toml) takes the config nanoGPT saved in its checkpoint. No target:
    nanoGPT's defaults and the overrides."""
    if target is None:
        return C.load(None, overrides)
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
        loaded.config = C.replace(directory.follow_dataset(loaded.config, loaded.overrides), **changes)
    return loaded


def run(args: argparse.Namespace) -> int:
    try:
        loaded = resolve(args.target, args.overrides)
        if error := world_size_error(loaded.config, world_size(args)):
            raise C.ConfigError(error)
        replaced = replaced_run(loaded.config) if args.force else None
        runner = runner_flags(args)
        made = directory.NewFiles(loaded.config.out_dir)
        with directory.preparing(loaded.config, force=args.force) as (cfg, _, lock):
            overrides = directory.engine_overrides(cfg, cfg.out_dir)
            engine = start_engine(Path(cfg.out_dir), runner, lock, overrides)
    except directory.RunDirLocked as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOCKED
    except (C.ConfigError, directory.RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if replaced:
        print(f"warning: --force: {replaced}", file=sys.stderr)
    if loaded.source_text and not Path(args.target).is_dir():  # as nanoGPT's configurator does
        print(f"Overriding config with {args.target}:\n{loaded.source_text.rstrip()}")
    for key, value in loaded.overrides.items():
        print(f"Overriding: {key} = {value!r}")
    for warning in sizing.config_warnings(cfg, loaded.source_text, loaded.source):
        print(f"warning: {warning}", file=sys.stderr)
    code = follow_engine(engine, Path(cfg.out_dir), runner)
    if code == EXIT_BAD_INPUT:  # the engine refused the start: a new run leaves nothing behind
        made.remove()
    return code


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


def start_engine(run_dir: Path, runner: Sequence[str] = (), lock: FileLock | None = None,
                 overrides: Sequence[str] = ()) -> subprocess.Popen[str]:
    """The engine as a child (a torchrun job with `runner`). `lock`, the run's lock, is handed to a
    single engine process; torchrun's rank 0 is a grandchild, which takes it once ours is released.
    `overrides`: a resume's changes, which the engine writes into config.toml once it accepts them."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    handed = lock.handed_to_child(env) if lock is not None and not runner else ()
    return subprocess.Popen(
        engine_argv(run_dir, overrides, runner=runner), env=torchrun_env(env) if runner else env, pass_fds=handed,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1,
        start_new_session=True,  # Ctrl+C is ours to turn into a clean stop
    )


def follow_engine(child: subprocess.Popen[str], run_dir: Path, runner: Sequence[str] = ()) -> int:
    """Copy the engine's log to stdout ("error:" lines to stderr) until it exits; its exit code,
    or why it died when it could not say so itself."""
    assert child.stdin is not None and child.stderr is not None
    pipe = CommandPipe(child.stdin)
    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=pipe.forward, args=(sys.stdin,), daemon=True).start()
    interrupts = 0
    last_signal = signal.SIGINT

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupts, last_signal
        interrupts += 1
        last_signal = signal.Signals(signum)
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
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if interrupts > 1 and code < 0:  # (an engine that ended first, its stop saved, is said as it ended)
        how = "Ctrl+C" if last_signal == signal.SIGINT else last_signal.name
        engine_state.record_quit(run_dir, f"quit by a second {how}, without a checkpoint", EXIT_INTERRUPTED)
        print(f"error: quit without a checkpoint (a second {how}); the last complete checkpoint stands",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if code < 0 or (code not in (0, EXIT_LOCKED) and not output.errors and output.report is None):
        print(engine_death(run_dir, child.pid, code, torchrun=bool(runner)), file=sys.stderr)
        return EXIT_SIGNAL_BASE - code if code < 0 else EXIT_FAILED
    # `train ... && next` must not go on after a Ctrl+C: 130 / 143 once the engine stopped for it,
    # whether its checkpoint was saved or not (then its one error line has said so)
    if code in (0, EXIT_FAILED) and interrupts and stopped(run_dir):
        return EXIT_SIGNAL_BASE + last_signal
    return code


def stopped(run_dir: Path) -> bool:
    """The engine's last word is that the run stopped short (not that it finished meanwhile)."""
    info = engine_state.read_info(run_dir)
    return info is not None and info.state == "stopped"


def engine_death(run_dir: Path, pid: int, code: int, torchrun: bool) -> str:
    """Why the engine ended without saying so itself: its signal (or exit code), where it was, the
    last checkpoint, then the last lines of engine.log."""
    who = f"torchrun (pid {pid})" if torchrun else f"the engine (pid {pid})"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        how = f"was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    else:
        how = f"exited with code {code} without saying why"
    last_step = last_iteration(run_dir / layout.METRICS)
    where = f" after iteration {last_step}" if last_step is not None else ""
    last = (f"the last checkpoint is {run_dir}{os.sep}{directory.describe_run(run_dir)}; resume with "
            f"`gpttui train {run_dir}`") if (run_dir / layout.CKPT).is_file() else "no checkpoint was written"
    lines = [f"error: {who} {how}{where}; {last}"]
    tail = log_tail(run_dir / layout.ENGINE_LOG, 5)
    if tail:
        lines.append(f"{run_dir / layout.ENGINE_LOG} ends:")
        lines += [f"  {line}" for line in tail]
    return "\n".join(lines)


def tail_lines(path: Path) -> list[str]:
    """The whole lines in a file's last 64 KiB (none when it can't be read)."""
    try:
        with open(path, "rb") as f:
            start = max(0, f.seek(0, os.SEEK_END) - 65536)
            f.seek(start)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return lines[1:] if start else lines


# what faulthandler writes after "Fatal Python error: ..." when native code crashes
CRASH_DUMP = ("Thread ", "Current thread ", "  File ", "  <no Python frame>", "Extension modules:")


def log_tail(path: Path, n: int) -> list[str]:
    """The last `n` lines of a log; when it ends in a native crash's dump, that dump's header and
    the crashing thread's stack instead."""
    lines = [line for line in tail_lines(path) if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Fatal Python error:"):
            current = [j for j in range(i, len(lines)) if lines[j].startswith("Current thread ")]
            stack = lines[current[0]:current[0] + 1 + 12] if current else []
            return [lines[i], *[line for line in stack if not line.startswith("Extension modules:")]]
        if not lines[i].startswith(CRASH_DUMP):
            break
    return lines[-n:]


def last_iteration(metrics: Path) -> int | None:
    """The iteration of the last step event in metrics.jsonl (a torn last line is skipped)."""
    for line in reversed(tail_lines(metrics)):
        try:
            ev = protocol.decode_event(line)
        except protocol.ProtocolError:
            continue
        if ev.get("type") == "step":
            return int(ev["iter"])
    return None


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
