"""`gpttui <command>`: a thin dispatcher.

Each command lives in `gpttui/commands/<name>.py` with HELP, add_arguments(parser) and
run(args) -> exit code, and is imported only when chosen, so `gpttui --help` stays fast and
never imports torch. Commands with OVERRIDES = True take nanoGPT-style `--key=value` config
overrides in `args.overrides`. An OSError that reaches here (a read-only or full file system, a
missing permission) is said in one line naming the path, with exit code 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from types import ModuleType

from gpttui import __version__
from gpttui.commands import EXIT_FAILED

COMMANDS = {
    "launch": "open the dashboard on a config, a run directory, or the bundled demo",
    "train": "train headless, printing nanoGPT's log lines",
    "config": "print a resolved config and what it implies (parameters, tokens, memory)",
    "prepare": "tokenize parquet / text / jsonl into train.bin and val.bin",
    "sample": "generate text from a checkpoint (nanoGPT sample.py flags)",
    "open": "open runs or nanoGPT logs read-only in the dashboard",
    "doctor": "judge a run or log: trends, forecast, overheads, true MFU",
    "export": "write a run's steps and evals as csv, parquet, jsonl or TensorBoard files; charts as png/svg/pdf",
    "attach": "reconnect the dashboard to a detached running engine",
}


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpttui",
        description="Train small GPT models with a live terminal dashboard.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<9} {h}" for n, h in COMMANDS.items())
        + "\n\n`gpttui COMMAND --help` for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"gpttui {__version__}")
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    return p


def parse(argv: list[str]) -> tuple[ModuleType, argparse.Namespace]:
    """The command's module and its arguments (config overrides in `args.overrides`); usage
    errors exit 2, as argparse does."""
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv or ["--help"])
        raise SystemExit(0)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.parse_args([name])  # prints the usage error and exits 2
    module = importlib.import_module(f"gpttui.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"gpttui {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    if getattr(module, "OVERRIDES", False):
        # taken out before argparse, which reads a token with a space in it (--out_dir=my run) as positional
        overrides = [a for a in rest if a.startswith("--") and "=" in a
                     and a.partition("=")[0] not in parser._option_string_actions]
        args, extra = parser.parse_known_args([a for a in rest if a not in overrides])
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)} (config overrides are --key=value)")
        args.overrides = overrides
    else:
        args = parser.parse_args(rest)
    return module, args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    module, args = parse(argv)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gpttui doctor run | head`: the reader left; exit quietly as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a read-only or full file system, a missing permission: one line, no traceback
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return EXIT_FAILED


# errors only a write meets: the line says "cannot write"
WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def os_error_line(e: OSError) -> str:
    """The path and the cause of an OSError, as one line."""
    cause = e.strerror or str(e)
    if e.filename is None:
        return cause
    verb = "cannot write " if e.errno in WRITE_ERRNOS else ""
    return f"{verb}{e.filename}: {cause}"
