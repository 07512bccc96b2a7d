"""`gpttui sample --out_dir=RUN [nanoGPT sample.py flags]`: print samples as they are made.

Takes nanoGPT sample.py's flags in its `--key=value` form (or `--key value`) with its defaults,
plus --top_p, --ckpt, --stop_at_eot, --fast_past_block, --data_dir and --threads, and prints
what nanoGPT prints: each sample (prompt included) followed by a '---------------' line, on
stdout; notes and the speed go to stderr. The work happens in the sampler process
(`python -m gpttui.engine.sample`), so this command never imports torch; the text streams as
each token is decoded.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gpttui.commands import EXIT_BAD_INPUT, EXIT_FAILED
from gpttui.run import layout, protocol
from gpttui.run.config import CHOICES, DEVICE_RE

HELP = "generate text from a checkpoint (nanoGPT sample.py flags)"


def _nano_str(text: str) -> str:
    """nanoGPT's configurator: a Python literal if the value is one (--start="'\\n'"), else the text."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def _top_k(text: str) -> int | None:
    if text in ("None", "none", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (or None/0 for no top-k), got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init_from", default="resume",
                   help="only 'resume' (a checkpoint); GPT-2's weights come in by training from them (--init_from=DIR)")
    p.add_argument("--out_dir", default="out", type=_nano_str, help="run directory; its ckpt.pt is sampled")
    p.add_argument("--ckpt", default="", type=_nano_str, help="a checkpoint file to sample instead of OUT_DIR/ckpt.pt")
    p.add_argument("--start", default="\n", type=_nano_str,
                   help="the prompt, or FILE:prompt.txt; empty starts from <|endoftext|> (GPT-2) or a newline")
    p.add_argument("--num_samples", default=10, type=int, help="samples to draw (default 10)")
    p.add_argument("--max_new_tokens", default=500, type=int, help="tokens generated per sample (default 500)")
    p.add_argument("--temperature", default=0.8, type=float, help="1 = as trained, lower = more predictable, 0 = greedy")
    p.add_argument("--top_k", default=200, type=_top_k, help="keep only the k most likely tokens (None/0: all)")
    p.add_argument("--top_p", default=1.0, type=float, help="keep the fewest tokens holding this much probability (1: off)")
    p.add_argument("--seed", default=1337, type=int, help="same seed, same text (nanoGPT's, for the same checkpoint)")
    p.add_argument("--device", default="auto", type=_nano_str, help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--dtype", default="auto", type=_nano_str,
                   help="bfloat16 / float16 autocast on a GPU; the CPU always uses float32")
    p.add_argument("--compile", default=False, type=_bool, nargs="?", const=True,
                   help="accepted for nanoGPT's command lines; unused (the KV cache is the speed-up)")
    p.add_argument("--stop_at_eot", default=False, type=_bool, nargs="?", const=True,
                   help="end a sample at <|endoftext|>")
    p.add_argument("--fast_past_block", default=False, type=_bool, nargs="?", const=True,
                   help="past block_size, refill the KV cache with the last half block instead of a forward over "
                        "the whole block per token (nanoGPT's): faster for samples longer than the block, but a "
                        "token sees half a block to a block of context and the text is not nanoGPT's")
    p.add_argument("--data_dir", default="", type=_nano_str,
                   help="where the character vocabulary's meta.pkl is, if not data/<dataset>")
    p.add_argument("--threads", default=0, type=int, help="CPU threads (0: 1 while the run trains, else the cores left idle)")


def request_values(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler's Request fields from the parsed flags."""
    names = ("out_dir", "ckpt", "start", "num_samples", "max_new_tokens", "temperature", "top_k", "top_p",
             "seed", "stop_at_eot", "fast_past_block", "data_dir", "threads")
    return {n: getattr(args, n) for n in names}


# What each float flag must be. The sampler checks the same rules, but a NaN or infinity can't
# reach it as itself (JSON carries them as null), so they are refused here, as given.
_FLOAT_RULES = {"temperature": "a finite number >= 0 (0 = greedy)", "top_p": "a number in (0, 1] (1 = off)"}


def _refusal(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags that can be told before the sampler starts; None if nothing."""
    for name, rule in _FLOAT_RULES.items():
        value = getattr(args, name)
        if not math.isfinite(value):
            return f"{name}: expected {rule}, got {value:g}"
    if not DEVICE_RE.match(args.device):   # the sampler tells no bad name from a device this machine lacks
        return f"device: expected cpu, cuda, cuda:N, mps or auto; got {args.device!r}"
    if args.dtype not in CHOICES["dtype"]:
        return f"dtype: expected one of {', '.join(CHOICES['dtype'])}; got {args.dtype!r}"
    if args.data_dir and not Path(args.data_dir).is_dir():
        return f"data_dir: {args.data_dir} is not a directory (expected the one holding the vocabulary's meta.pkl)"
    return None


def sampler_argv(device: str = "auto", dtype: str = "auto") -> list[str]:
    return [sys.executable, "-m", "gpttui.engine.sample", f"--device={device}", f"--dtype={dtype}"]


def run(args: argparse.Namespace) -> int:
    if args.init_from != "resume":
        print(f"error: init_from: only 'resume' is supported (got {args.init_from!r}); to sample GPT-2's "
              f"weights, train a run from them first (gpttui train --init_from=DIR, DIR holding model.safetensors)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if problem := _refusal(args):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    ckpt = Path(args.ckpt) if args.ckpt else Path(args.out_dir) / layout.CKPT
    if not ckpt.is_file():
        print(f"error: {ckpt}: no checkpoint there (train first, or give --out_dir / --ckpt)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.compile:
        print("note: --compile is not used: the sampler decodes with a KV cache instead", file=sys.stderr)
    proc = subprocess.Popen(sampler_argv(args.device, args.dtype), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True, text=True, encoding="utf-8")
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(protocol.command("sample", **request_values(args)))
        proc.stdin.close()
        code = _print_events(proc.stdout)
    except BrokenPipeError:  # the reader of our output is gone (`| head`): stop quietly
        proc.kill()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException:
        proc.kill()
        raise
    proc.wait()
    if code is None:
        print(f"error: the sampler exited (code {proc.returncode}) before finishing", file=sys.stderr)
        return EXIT_FAILED
    return code


def _print_events(stream: Any) -> int | None:
    """Print samples as nanoGPT does; the exit code once the request ends (None: it never did)."""
    out = sys.stdout
    total_tokens = 0
    total_s = 0.0
    firsts: list[float] = []
    refused = False
    for line in stream:
        try:
            e = protocol.decode_event(line)
        except protocol.ProtocolError:
            print(line.rstrip("\n"), file=sys.stderr)
            continue
        kind = e["type"]
        if kind == "token":
            out.write(e["text"])
            out.flush()
        elif kind == "sample_done":
            out.write("\n" + layout.SAMPLE_SEPARATOR + "\n")
            out.flush()
            total_tokens += e.get("tokens", 0)
            total_s += e.get("seconds", 0.0)
            firsts.append(e.get("first_token_s", 0.0))
        elif kind == "log" and not e.get("ready"):
            print(e["message"], file=sys.stderr)
        elif kind == "error":
            print(f"error: {e['message']}", file=sys.stderr)
            refused = bool(e.get("refused"))   # the request's fault (a checkpoint, a prompt): exit 2
        elif kind == "state" and e["state"] in ("finished", "stopped", "failed"):
            if firsts:
                rate = total_tokens / total_s if total_s > 0 else 0.0
                print(f"{len(firsts)} sample(s), {total_tokens} tokens at {rate:.1f} tokens/s "
                      f"(first token after {1000 * firsts[0]:.0f} ms)", file=sys.stderr)
            if e["state"] == "failed":
                return EXIT_BAD_INPUT if refused else EXIT_FAILED
            return 0
    return None
