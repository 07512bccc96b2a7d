"""Make the forecast back-test corpus: complete runs trained by gpttui itself on the CPU.

    nice python bench/make_backtest_runs.py [--only NAME ...] [--list]

Each run is `gpttui train` headless on a tiny model; what the forecast reads of it is kept in
bench/data/backtest/NAME/ (metrics.jsonl trimmed to the hello, the evals and thinned steps;
config.toml), a few tens of KB each. A run already kept is skipped, so the script resumes.

Each run has 25 evals (iter 0 and every 1/24 of the run, so even a cut at 25% has several past the
transient) over 64 batches (48 on BPE, 16 of the large batches; nanoGPT's configs use 200): the last eval is
the truth the forecast is scored against, and the evals' noise caps how well any forecast can score
(`forecast_backtest.py --noise-floor`). Users' runs are longer (thousands of iterations); these stay
a minute to a quarter of an hour each on a shared CPU.

The runs span the lr schedules (cosine, constant, warmup-stable-decay, linear decay), warm-up
lengths, three model sizes, character data (tiny Shakespeare, all of it, a slice repeated for
many epochs, and a tiny slice repeated until it overfits) and GPT-2 BPE data (docstrings of this Python's standard library: real
English every Linux machine with Python has), learning rates from too low to too high; then
families added later: Muon (the other optimizer: every schedule, two sizes, its lr from low to
high), runs four times as long (2400 iterations), the bundled demo's model (4x128) for 3000
iterations (past the early plateau by a tenth of the run, as users' first runs are), batches of
4 to 16 times the tokens and of 32k tokens (as on a GPU), nanoGPT's shakespeare_char recipe
at its README's CPU scale, schedules shaped as none before (WSD over a tenth or two fifths,
cosine flat at min_lr after 60-70% of the run, decays to zero), BPE runs four times as long
(one pass over 300k of the docstrings' tokens; every schedule, two sizes), and runs on repeated data
until val turns up, as nanoGPT's stock shakespeare_char run does on a GPU (the tiny slice over ~120
epochs and the small one over 40-85; every schedule, dropout 0 to 0.2, four sizes, both optimizers).

`split(name)` is the fixed rule that makes the tuning half and the held-out half (runs of each
data set sorted by the SHA-256 of their names, alternately). bench/forecast_backtest.py reads it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "data" / "backtest"
SMALL_CHARS = 30_000          # a slice of tiny Shakespeare repeated for ~20 epochs
TINY_CHARS = 5_000            # a slice repeated for ~120 epochs: val turns up (overfits)
STDLIB_TEXT_BYTES = 2_000_000  # docstrings taken from the standard library (~0.5M GPT-2 tokens)
STEP_EVERY = 10               # steps kept in the trimmed metrics.jsonl
EVALS = 24                    # eval intervals per run (25 evals with iter 0), so even a 25% cut has 7
EVAL_ITERS = {"char": 64, "bpe": 48}  # batches per eval (each of train and val)

SIZES = {  # n_layer, n_head, n_embd
    "xs": (1, 2, 32),
    "s": (2, 2, 64),
    "m": (3, 3, 96),
    "l": (4, 4, 128),   # the bundled demo's model
}
SCHEDULES = {  # decay_lr, lr_schedule, decay_frac
    "cos": dict(decay_lr=True, lr_schedule="cosine"),
    "const": dict(decay_lr=False),
    "wsd": dict(decay_lr=True, lr_schedule="wsd", decay_frac=0.25),
    "lin": dict(decay_lr=True, lr_schedule="wsd"),   # decay_frac set so it decays linearly from the warm-up on
}


@dataclass
class Spec:
    name: str
    data: str                     # "char", "char_small", "char_tiny" or "bpe"
    size: str
    schedule: str
    lr: float
    max_iters: int
    warmup: int
    eval_interval: int
    eval_iters: int
    extra: dict[str, Any] = field(default_factory=dict)
    group: str = ""               # what `split` alternates within: the data set, or a family added later

    def __post_init__(self) -> None:
        self.group = self.group or self.data

    def overrides(self, data_dir: Path, out_dir: Path) -> dict[str, Any]:
        n_layer, n_head, n_embd = SIZES[self.size]
        bpe = self.data == "bpe"
        values: dict[str, Any] = dict(
            out_dir=str(out_dir), data_dir=str(data_dir), n_layer=n_layer, n_head=n_head, n_embd=n_embd,
            block_size=32 if bpe else 64, batch_size=8 if bpe else 12, gradient_accumulation_steps=1, dropout=0.0,
            bias=False, learning_rate=self.lr, min_lr=self.lr / 10, warmup_iters=self.warmup,
            max_iters=self.max_iters, lr_decay_iters=self.max_iters, eval_interval=self.eval_interval,
            eval_iters=self.eval_iters, log_interval=1, device="cpu", dtype="float32", compile=False,
            threads=1, always_save_checkpoint=False, seed=1337 + len(self.name), **SCHEDULES[self.schedule],
        )
        if self.schedule == "lin":
            # rounded down, so the decay starts at or just after the warm-up's end, never inside it
            values["decay_frac"] = math.floor((self.max_iters - self.warmup) / self.max_iters * 1e4) / 1e4
        values.update(self.extra)
        return values


def _runs() -> list[Spec]:
    r = []

    def add(data: str, size: str, schedule: str, lr: float, iters: int, warmup: int, group: str = "",
            **extra: Any) -> None:
        name = f"{data}-{size}-{schedule}-lr{lr:g}-w{warmup}-{iters}"
        if extra:
            name += "-" + "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in extra.items())
        eval_iters = EVAL_ITERS["bpe" if data == "bpe" else "char"]
        r.append(Spec(name, data, size, schedule, lr, iters, warmup, iters // EVALS, eval_iters, extra, group))

    # tiny Shakespeare, all of it (about half a pass, past the early plateau near loss 2.45 at the
    # middle learning rates): every schedule on two sizes, two on the third
    for size, lr, schedules in (("xs", 1e-2, SCHEDULES), ("s", 3e-3, SCHEDULES), ("m", 1e-3, ("cos", "wsd"))):
        for schedule in schedules:
            add("char", size, schedule, lr, 600, 20)
    # learning rates from too low to too high, and warm-up lengths
    for lr in (1e-4, 3e-4, 3e-2, 1e-1):
        add("char", "s", "cos", lr, 600, 20)
    for warmup in (0, 100, 200):
        add("char", "s", "cos", 3e-3, 600, warmup)
    add("char", "m", "lin", 3e-3, 600, 10)
    # small slices repeated for many epochs (the tiny one overfits: val turns up)
    for size, schedule, lr in (("s", "cos", 1e-2), ("s", "const", 2e-3)):
        add("char_small", size, schedule, lr, 720, 20)
    add("char_small", "m", "cos", 3e-3, 720, 20, dropout=0.2)
    for size, schedule, lr in (("s", "cos", 3e-3), ("m", "const", 2e-3)):
        add("char_tiny", size, schedule, lr, 720, 20)
    # GPT-2 BPE on the standard library's docstrings, one pass
    # (the 50304-token output layer makes these the slow ones: few, mostly the xs model)
    for size, schedule, lr in (("xs", "cos", 3e-3), ("s", "cos", 2e-3), ("xs", "wsd", 3e-3), ("xs", "cos", 3e-2)):
        add("bpe", size, schedule, lr, 312, 20)
    # added later, each family split within itself (the runs above keep their halves):
    # Muon (optimizer = "muon"): every schedule, two sizes, Muon's lr from low to high
    for size, schedule, muon_lr in (("s", "cos", 0.02), ("s", "const", 0.02), ("s", "wsd", 0.02), ("s", "lin", 0.02),
                                    ("m", "cos", 0.02), ("m", "wsd", 0.02), ("s", "cos", 0.005), ("s", "cos", 0.08)):
        add("char", size, schedule, 3e-3, 600, 20, group="muon", optimizer="muon", muon_lr=muon_lr)
    # longer runs, as users' are: four times the iterations, well past the early plateau
    for size, schedule, lr, extra in (("xs", "cos", 1e-2, {}), ("xs", "const", 1e-2, {}), ("s", "cos", 3e-3, {}),
                                      ("s", "wsd", 3e-3, {}), ("s", "lin", 3e-3, {}),
                                      ("xs", "cos", 3e-3, {"optimizer": "muon", "muon_lr": 0.02})):
        add("char", size, schedule, lr, 2400, 20, group="long", **extra)
    # the bundled demo's model (4x128), 3000 iterations: past the early plateau by a tenth of the run,
    # as users' first runs are; every schedule, both optimizers, lr from low to high, one that overfits
    for data, schedule, lr, warmup, extra in (
            ("char", "cos", 1e-3, 100, {}), ("char", "cos", 1e-3, 100, {"optimizer": "muon", "muon_lr": 0.02}),
            ("char", "wsd", 1e-3, 100, {}), ("char", "lin", 1e-3, 100, {}), ("char", "const", 1e-3, 100, {}),
            ("char", "cos", 3e-3, 100, {}), ("char", "cos", 3e-4, 100, {}),
            ("char", "wsd", 1e-3, 100, {"optimizer": "muon", "muon_lr": 0.02}),
            ("char", "const", 1e-3, 100, {"optimizer": "muon", "muon_lr": 0.02}),
            ("char_small", "cos", 1e-3, 100, {"dropout": 0.2})):
        add(data, "l", schedule, lr, 3000, warmup, group="demo", **extra)
    # larger batches (4 to 16 times the tokens per iteration): how much the lr's decay brings
    # depends on the gradient noise, which falls as the batch grows
    for size, schedule, lr, batch in (("s", "cos", 3e-3, 48), ("s", "cos", 3e-3, 192), ("s", "wsd", 3e-3, 192),
                                      ("m", "cos", 1e-3, 96), ("s", "lin", 3e-3, 96), ("m", "wsd", 1e-3, 48)):
        add("char", size, schedule, lr, 600, 20, group="batch", batch_size=batch)
    # large batches (32k tokens an iteration, as on a GPU; 16 batches an eval are then 0.5M tokens)
    for size, schedule, lr in (("s", "cos", 3e-3), ("s", "wsd", 3e-3), ("s", "lin", 3e-3), ("m", "cos", 1e-3)):
        add("char", size, schedule, lr, 600, 20, group="large batch", batch_size=512, eval_iters=16)
    # nanoGPT's shakespeare_char recipe at the CPU scale its README gives (4x128, beta2 0.99): the
    # run most users make first
    for schedule, lr, warmup, iters, extra in (
            ("cos", 1e-3, 100, 3000, {}), ("cos", 1e-3, 100, 3000, {"dropout": 0.2}),
            ("const", 1e-3, 100, 3000, {}), ("cos", 3e-3, 200, 3000, {}),
            ("wsd", 1e-3, 100, 3000, {}), ("cos", 1e-3, 100, 2000, {"dropout": 0.1})):
        add("char", "l", schedule, lr, iters, warmup, group="nanogpt recipe", beta2=0.99, **extra)
    # quieter evals (8 times the batches: the eval noise under half): how much of the error is noise
    for schedule, warmup, extra in (("cos", 100, {}), ("cos", 100, {"optimizer": "muon", "muon_lr": 0.02}),
                                    ("wsd", 100, {}), ("lin", 100, {}), ("const", 100, {}),
                                    ("cos", 200, {"beta2": 0.99})):
        add("char", "l", schedule, 1e-3, 3000, warmup, group="quiet", eval_iters=512, **extra)
    # schedules shaped as none before (made after the multi-power-law deficit was chosen, so it
    # met them unseen): WSD decaying over a tenth and two fifths of the run, cosine reaching min_lr
    # at 60-70% of the run and flat after, decays to zero
    for size, schedule, lr, extra in (
            ("s", "wsd", 3e-3, {"decay_frac": 0.1}), ("s", "wsd", 3e-3, {"decay_frac": 0.4}),
            ("s", "cos", 3e-3, {"lr_decay_iters": 360}), ("s", "lin", 3e-3, {"min_lr": 0.0}),
            ("s", "cos", 5e-3, {"min_lr": 0.0}), ("m", "cos", 1e-3, {"lr_decay_iters": 420}),
            ("m", "wsd", 1e-3, {"decay_frac": 0.4}), ("s", "wsd", 3e-3, {"decay_frac": 0.1, "min_lr": 0.0})):
        add("char", size, schedule, lr, 600, 20, group="unseen schedules", **extra)
    # GPT-2 BPE, one pass four times as long (made after the constants above were chosen): the
    # fixture logs of GPU runs on web text gain far less from the lr's decay than the char runs do
    for size, schedule, lr in (("xs", "cos", 3e-3), ("xs", "const", 3e-3), ("xs", "wsd", 3e-3), ("xs", "lin", 3e-3),
                               ("xs", "cos", 1e-3), ("s", "cos", 2e-3), ("s", "wsd", 1e-3), ("xs", "cos", 1e-2)):
        add("bpe", size, schedule, lr, 1200, 50, group="bpe long")
    # repeated data until val turns up, as nanoGPT's stock shakespeare_char run does on a GPU (made
    # after every constant above was chosen): the tiny slice over ~120 epochs and the small one over
    # 40-85, every schedule, dropout 0 to 0.2, four sizes, both optimizers
    for data, size, schedule, lr, iters, warmup, extra in (
            ("char_tiny", "s", "cos", 1e-3, 720, 20, {}), ("char_tiny", "s", "const", 3e-3, 720, 20, {}),
            ("char_tiny", "s", "wsd", 3e-3, 720, 20, {}), ("char_tiny", "s", "lin", 2e-3, 720, 20, {}),
            ("char_tiny", "m", "cos", 3e-3, 720, 20, {"dropout": 0.2}),
            ("char_tiny", "m", "wsd", 1e-3, 720, 20, {"dropout": 0.1}),
            ("char_tiny", "xs", "cos", 1e-2, 720, 20, {}),
            ("char_tiny", "m", "const", 1e-3, 720, 20, {"optimizer": "muon", "muon_lr": 0.02}),
            ("char_small", "m", "cos", 3e-3, 1440, 20, {}), ("char_small", "s", "const", 3e-3, 1440, 20, {}),
            ("char_small", "m", "wsd", 3e-3, 1440, 20, {"dropout": 0.2}),
            ("char_small", "m", "lin", 2e-3, 1440, 20, {"dropout": 0.1}),
            ("char_small", "s", "cos", 1e-2, 1440, 20, {}),
            ("char_small", "l", "cos", 1e-3, 3000, 100, {"beta2": 0.99}),
            ("char_small", "l", "cos", 1e-3, 3000, 100, {"beta2": 0.99, "dropout": 0.2}),
            ("char_small", "l", "wsd", 1e-3, 2000, 100, {"beta2": 0.99, "dropout": 0.1})):
        add(data, size, schedule, lr, iters, warmup, group="overfit", **extra)
    return r


RUNS = _runs()


def split(name: str) -> str:
    """'tuning' or 'held-out', by a fixed rule: within each group (a data set, or a family of runs
    added later: Muon, long), runs sorted by the SHA-256 of their names alternate, the first tuning
    (so both halves hold every kind of run, and a family added leaves the others' halves as they were)."""
    spec = next(r for r in RUNS if r.name == name)
    group = sorted((r.name for r in RUNS if r.group == spec.group),
                   key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return "tuning" if group.index(name) % 2 == 0 else "held-out"


# ---------------------------------------------------------------- data

def stdlib_docstrings(limit: int) -> list[str]:
    """The docstrings of this Python's standard library modules (tests and site-packages left out),
    one document per module, in path order, up to `limit` bytes in all."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib).parts
        if any(p in ("site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo") for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        parts = [ast.get_docstring(n) for n in ast.walk(tree)
                 if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        text = "\n\n".join(p for p in parts if p and len(p) > 40)
        if len(text) < 200:
            continue
        docs.append(text)
        total += len(text.encode())
        if total >= limit:
            break
    return docs


def gpttui(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "gpttui", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"gpttui {' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def make_data(work: Path) -> dict[str, Path]:
    dirs = {"char": work / "char", "char_small": work / "char_small", "char_tiny": work / "char_tiny",
            "bpe": work / "bpe"}
    from common import char_data  # here: tests import this module for its corpus, not to make data

    for name, n_chars in (("char", None), ("char_small", SMALL_CHARS), ("char_tiny", TINY_CHARS)):
        if not (dirs[name] / "train.bin").exists():
            char_data(dirs[name], n_chars)
    if not (dirs["bpe"] / "train.bin").exists():
        src = work / "stdlib_docstrings.jsonl"
        with open(src, "w", encoding="utf-8") as f:
            for doc in stdlib_docstrings(STDLIB_TEXT_BYTES):
                f.write(json.dumps({"text": doc}) + "\n")
        gpttui("prepare", str(src), "--out", str(dirs["bpe"]), "--val-fraction", "0.05", "--workers", "1")
    return dirs


# ---------------------------------------------------------------- runs

def trim(run_dir: Path, dest: Path) -> None:
    """Keep what the forecast reads: the hello (its config), evals, every STEP_EVERY-th step, the end."""
    dest.mkdir(parents=True, exist_ok=True)
    kept = []
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            kind = e.get("type")
            if kind == "step":
                if e["iter"] % STEP_EVERY:
                    continue
                e = {k: e[k] for k in ("type", "iter", "t", "loss", "lr", "dt_ms", "tokens") if k in e}
            elif kind == "state" and e.get("state") not in ("finished", "stopped", "failed"):
                continue
            elif kind not in ("hello", "eval", "state"):
                continue
            kept.append(json.dumps(e, separators=(",", ":")))
    (dest / "metrics.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (dest / "config.toml").write_bytes((run_dir / "config.toml").read_bytes())


def train(spec: Spec, data: Path, work: Path) -> float:
    run_dir = work / "runs" / spec.name
    values = spec.overrides(data, run_dir)
    args = [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in values.items()]
    t0 = time.perf_counter()
    gpttui("train", str(work / "base.py"), *args, "--force")
    elapsed = time.perf_counter() - t0
    trim(run_dir, OUT / spec.name)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="run only these names")
    ap.add_argument("--list", action="store_true", help="print the runs and their split, train nothing")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "gpttui-backtest"),
                    help="where data and full run directories are made (not kept)")
    args = ap.parse_args()
    if args.list:
        for r in RUNS:
            print(f"{split(r.name):<9} {r.name}")
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "base.py").write_text("# the back-test runs: every value is given on the command line\n")
    dirs = make_data(work)
    # in hash order, so a corpus cut short still mixes every kind of run
    todo = sorted((r for r in RUNS if not args.only or r.name in args.only),
                  key=lambda r: hashlib.sha256(r.name.encode()).hexdigest())
    for i, spec in enumerate(todo, 1):
        if (OUT / spec.name / "metrics.jsonl").exists():
            continue
        secs = train(spec, dirs[spec.data], work)
        print(f"[{i}/{len(todo)}] {spec.name}: {secs:.0f} s ({split(spec.name)})", flush=True)


if __name__ == "__main__":
    main()
