"""`gpttui config FILE [--key=value ...] [--json]`: the resolved config and its figures."""

from __future__ import annotations

import argparse
import json
import sys

from gpttui.commands import EXIT_BAD_INPUT
from gpttui.run import config as C
from gpttui.run import sizing
from gpttui.run.units import human_bytes, human_count

HELP = "print a resolved config and what it implies"
OVERRIDES = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="nanoGPT .py config, .toml config, or a run directory "
                                            "(none: nanoGPT's defaults)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.epilog = ("Any config key can be set after the file, nanoGPT style: --key=value (--n_layer=6 "
                "--batch_size=8 --dataset=shakespeare_char), also with no file: "
                "`gpttui config --n_layer=6` is nanoGPT's defaults plus the flags.")


def run(args: argparse.Namespace) -> int:
    try:
        loaded = C.load(args.file, args.overrides)
        cfg = loaded.config
        d = sizing.derive(cfg)   # (the data's vocabulary: a meta it can't read is refused here)
    except C.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    errors = C.validate(cfg)
    warnings = sizing.config_warnings(cfg, loaded.source_text, loaded.source)
    if args.json:  # the whole object either way: a script reads "errors" from it
        print(json.dumps({"config": cfg.to_dict(), "derived": d.to_dict(),
                          "errors": errors, "warnings": warnings}, indent=2))
        return EXIT_BAD_INPUT if errors else 0
    if errors:  # a refused config: its errors alone, not figures of a model that can't be built
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(render(cfg, d))
    for w in warnings:
        print(f"warning: {w}")
    return 0


def render(cfg: C.TrainConfig, d: sizing.Derived) -> str:
    lines = []
    for group in C.GROUPS:
        lines.append(f"[{group}]")
        for name, f in C.FIELDS.items():
            if f.metadata["group"] == group:
                value = getattr(cfg, name)
                mark = "" if value == getattr(C.DEFAULTS, name) else "   (default " + repr(getattr(C.DEFAULTS, name)) + ")"
                lines.append(f"  {name} = {value!r}{mark}")
    lines += [
        "",
        f"number of parameters: {d.params_nanogpt / 1e6:.2f}M",
        f"  total {human_count(d.params_total)} (with position embeddings), "
        f"non-embedding {human_count(d.params_non_embedding)}, vocab {d.vocab_size}",
    ]
    return "\n".join(lines + (_eval_only_lines(cfg, d) if cfg.eval_only else _training_lines(cfg, d)))


def _training_lines(cfg: C.TrainConfig, d: sizing.Derived) -> list[str]:
    mem = d.memory_bytes
    return [
        f"tokens per iteration will be: {d.tokens_per_iter:,}",
        f"tokens at max_iters ({cfg.max_iters:,}): {human_count(d.tokens_at_max_iters)} "
        f"= {d.tokens_per_param:.1f} tokens/parameter (compute-optimal is ~{sizing.COMPUTE_OPTIMAL:.0f})",
        f"FLOPs per token: {human_count(d.flops_per_token)}, per iteration: {d.flops_per_iter:.3g}",
        f"training memory (estimate): {human_bytes(mem['total'])} = weights {human_bytes(mem['weights'])}"
        f" + grads {human_bytes(mem['grads'])} + {sizing.optimizer_label(cfg)} {human_bytes(mem['optimizer'])}"
        f" + activations {human_bytes(mem['activations'])}",
    ]


def _eval_only_lines(cfg: C.TrainConfig, d: sizing.Derived) -> list[str]:
    """An eval_only run trains nothing (no tokens trained, no optimizer): it evaluates once and exits."""
    model = {"scratch": "a freshly initialized model",
             "resume": f"the checkpoint in {cfg.out_dir}"}.get(cfg.init_from, f"the {cfg.init_from!r} weights")
    mem = d.eval_memory_bytes
    return [
        f"eval_only: trains nothing; evaluates {model} once and exits",
        f"tokens per evaluation: {d.tokens_per_eval:,} = eval_iters {cfg.eval_iters:,} batches of "
        f"{cfg.batch_size} x {cfg.block_size} tokens on each of train and val",
        f"evaluation memory (estimate): {human_bytes(mem['total'])} = weights {human_bytes(mem['weights'])}"
        f" + activations {human_bytes(mem['activations'])} (no grads or optimizer state)",
    ]
