"""Wall time and iterations to nanoGPT's loss: AdamW as nanoGPT against gpttui with Muon.

Table 1 is nanoGPT's CPU recipe from its README ("I only have a macbook": 4 layers x 128,
character-level tiny Shakespeare, batch 12, block 64, cosine 1e-3 -> 1e-4 with 100 warm-up
iterations, beta2 0.99, dropout 0, 2000 iterations), trained with AdamW by nanoGPT's own train.py
when NANOGPT_DIR names a work tree of it, else by gpttui's AdamW path (the same loop); then the
same recipe with `optimizer = "muon"` on shorter schedules. Every run evaluates every
--eval-interval iterations (eval_iters 20, as the README's command). Table 2 (--bpe) is a small
GPT-2-vocabulary model on the Python standard library's sources, prepared with `gpttui prepare`.

For each run: the first evaluation at or below the AdamW run's final val loss (iteration, and
wall time from the end of the iteration-0 evaluation, evaluations included), each as a ratio to
the AdamW run's own, and the val loss at equal iterations. With --parallel the runs train side
by side (one thread each), so that a machine shared with other work loads them alike; else one
after another, with the engine's automatic threads.

    python bench/time_to_loss.py [--muon-iters 600,1000,2000] [--bpe] [--skip-char] [--parallel]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import char_data

from gpttui.run import config as C
from gpttui.run import directory

CHAR_RECIPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, gradient_accumulation_steps=1,
                   dropout=0.0, learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100,
                   eval_iters=20, log_interval=50, device="cpu", dtype="float32", compile=False,
                   always_save_checkpoint=False)
BPE_RECIPE = {**CHAR_RECIPE, "block_size": 128, "learning_rate": 6e-4, "min_lr": 6e-5, "beta2": 0.95}
STEP_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


@dataclass
class Run:
    name: str
    iters: int
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, val loss, seconds)

    def final(self) -> float:
        return self.evals[-1][1]

    def at(self, it: int) -> float | None:
        return next((v for i, v, _ in self.evals if i == it), None)

    def reached(self, target: float) -> tuple[int, float] | None:
        return next(((i, s) for i, v, s in self.evals if v <= target), None)

    def ms_per_iter(self) -> float:
        return self.evals[-1][2] / self.iters * 1000


def recipe_config(base: dict, data: Path, run_dir: Path, iters: int, eval_interval: int, threads: int,
                  **over: object) -> C.TrainConfig:
    return C.build({**base, "data_dir": str(data), "out_dir": str(run_dir), "max_iters": iters,
                    "lr_decay_iters": iters, "eval_interval": eval_interval, "threads": threads, **over})


def start_engine(cfg: C.TrainConfig) -> subprocess.Popen:
    run_dir = Path(cfg.out_dir)
    directory.prepare(cfg, run_dir, force=True)
    return subprocess.Popen([sys.executable, "-m", "gpttui.engine", str(run_dir)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def engine_run(name: str, cfg: C.TrainConfig) -> Run:
    """The eval events of a finished engine run, seconds counted from the iteration-0 eval."""
    with open(Path(cfg.out_dir) / "metrics.jsonl", encoding="utf-8") as f:
        evals = [e for e in map(json.loads, f) if e["type"] == "eval"]
    t0 = evals[0]["t"]
    return Run(name, cfg.max_iters, [(e["iter"], e["val_loss"], e["t"] - t0) for e in evals])


def start_nanogpt(nanogpt: Path, cfg: C.TrainConfig, work: Path) -> subprocess.Popen:
    """nanoGPT's train.py on the same data: it reads data/<dataset>/ and configurator.py from
    its working directory."""
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "data" / "shakespeare_char").symlink_to(Path(cfg.data_dir).resolve())
    (work / "configurator.py").symlink_to(nanogpt / "configurator.py")
    args = [f"--{k}={getattr(cfg, k)}" for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                                  "gradient_accumulation_steps", "dropout", "learning_rate",
                                                  "min_lr", "beta2", "warmup_iters", "max_iters",
                                                  "lr_decay_iters", "eval_interval", "eval_iters",
                                                  "log_interval", "device", "dtype", "compile")]
    env = {**os.environ, "PYTHONPATH": str(nanogpt)}
    if cfg.threads:
        env["OMP_NUM_THREADS"] = str(cfg.threads)
    return subprocess.Popen([sys.executable, str(nanogpt / "train.py"), "--dataset=shakespeare_char",
                             f"--out_dir={work / 'out'}", "--always_save_checkpoint=False", *args],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def nanogpt_run(proc: subprocess.Popen, iters: int) -> Run:
    run = Run("nanoGPT train.py AdamW", iters)
    t0 = None
    assert proc.stdout is not None
    for line in proc.stdout:
        m = STEP_LINE.match(line)
        if m:
            now = time.perf_counter()
            t0 = now if t0 is None else t0
            run.evals.append((int(m.group(1)), float(m.group(3)), now - t0))
    if proc.wait() != 0 or not run.evals:
        raise SystemExit("nanoGPT's train.py failed")
    return run


def train_all(base: dict, data: Path, tmp: Path, muon_iters: list[int], adamw_iters: int, eval_interval: int,
              parallel: bool, nanogpt: Path | None, tag: str) -> list[Run]:
    threads = 1 if parallel else 0
    plans = [("AdamW (gpttui)", recipe_config(base, data, tmp / f"{tag}-adamw", adamw_iters, eval_interval,
                                              threads))]
    plans += [(f"Muon {n} iters", recipe_config(base, data, tmp / f"{tag}-muon{n}", n, eval_interval, threads,
                                                optimizer="muon")) for n in muon_iters]
    use_nanogpt = nanogpt is not None and tag == "char"
    started: list[tuple[str, C.TrainConfig, subprocess.Popen]] = []
    runs: list[Run] = []
    for i, (name, cfg) in enumerate(plans):
        if i == 0 and use_nanogpt:
            assert nanogpt is not None
            proc = start_nanogpt(nanogpt, cfg, tmp / "nanogpt")
            name = "nanoGPT train.py AdamW"
        else:
            proc = start_engine(cfg)
        started.append((name, cfg, proc))
        if not parallel:
            runs.append(finish(name, cfg, proc, use_nanogpt and i == 0))
    if parallel:
        runs = [finish(name, cfg, proc, use_nanogpt and i == 0) for i, (name, cfg, proc) in enumerate(started)]
    return runs


def finish(name: str, cfg: C.TrainConfig, proc: subprocess.Popen, is_nanogpt: bool) -> Run:
    if is_nanogpt:
        return nanogpt_run(proc, cfg.max_iters)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed: {err[-2000:]}")
    return engine_run(name, cfg)


def report(title: str, runs: list[Run], checkpoints: list[int]) -> None:
    base = runs[0]
    target = base.final()
    base_hit = base.reached(target)
    print(f"\n{title}\ntarget: {base.name}'s final val loss after {base.iters} iterations = {target:.4f}")
    print("first eval at or below the target; ratios to the first run's first such eval")
    print(f"{'run':<24} {'ms/iter':>8} {'final val':>9}  {'reaches target at':<28} {'iter ratio':>10} "
          f"{'time ratio':>10}")
    for r in runs:
        hit = r.reached(target)
        where = f"iter {hit[0]}, {hit[1]:.1f} s" if hit else "not reached"
        iter_ratio = f"{hit[0] / base_hit[0]:.2f}x" if hit and base_hit else "-"
        time_ratio = f"{hit[1] / base_hit[1]:.2f}x" if hit and base_hit else "-"
        print(f"{r.name:<24} {r.ms_per_iter():>8.1f} {r.final():>9.4f}  {where:<28} {iter_ratio:>10} "
              f"{time_ratio:>10}")
    print("val loss at equal iterations (AdamW's row: its own schedule, not yet decayed before its end)")
    print(f"{'run':<24} " + " ".join(f"{it:>7}" for it in checkpoints))
    for r in runs:
        cells = [r.at(it) for it in checkpoints]
        print(f"{r.name:<24} " + " ".join(f"{v:>7.4f}" if v is not None else f"{'-':>7}" for v in cells))
    for r in runs[1:]:
        at_base = base.at(r.iters)
        if at_base is not None:
            print(f"  {r.name}: final {r.final():.4f} vs {base.name} at iter {r.iters}: {at_base:.4f} "
                  f"(lower by {at_base - r.final():.4f})")
    print("load average at the end (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


def stdlib_docs(path: Path, max_bytes: int) -> Path:
    """The Python standard library's .py sources as JSON lines, one document per file (not its
    tests, nor site-packages: what is installed there differs between machines)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        for src in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
            if "test" in src.parts[-2] or src.parts[-2] == "site-packages" or total > max_bytes:
                continue
            try:
                text = src.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            total += len(text)
            f.write(json.dumps({"text": text}) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adamw-iters", type=int, default=2000)
    ap.add_argument("--muon-iters", default="600,1000,2000", help="Muon schedules, comma-separated")
    ap.add_argument("--eval-interval", type=int, default=50)
    ap.add_argument("--parallel", action="store_true", help="train the runs side by side, one thread each")
    ap.add_argument("--bpe", action="store_true", help="also the GPT-2-vocabulary table on stdlib sources")
    ap.add_argument("--bpe-adamw-iters", type=int, default=500)
    ap.add_argument("--bpe-muon-iters", default="250,500")
    ap.add_argument("--skip-char", action="store_true")
    args = ap.parse_args()
    nanogpt = Path(os.environ["NANOGPT_DIR"]).resolve() if os.environ.get("NANOGPT_DIR") else None
    muon = [int(n) for n in args.muon_iters.split(",") if n]
    print(f"cores={os.cpu_count()}, load average={os.getloadavg()[0]:.2f}, "
          f"{'side by side, 1 thread each' if args.parallel else 'one after another'}; "
          f"AdamW by {'nanoGPT train.py in ' + str(nanogpt) if nanogpt else 'gpttui (NANOGPT_DIR unset)'}; "
          f"Muon: muon_lr={C.DEFAULTS.muon_lr}, muon_momentum={C.DEFAULTS.muon_momentum}", flush=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if not args.skip_char:
            data = char_data(tmp / "char")
            runs = train_all(CHAR_RECIPE, data, tmp, muon, args.adamw_iters, args.eval_interval, args.parallel,
                             nanogpt, "char")
            report("Table 1: nanoGPT's CPU recipe, character-level tiny Shakespeare", runs,
                   sorted({500, 1000, 1500, args.adamw_iters, *muon}))
        if args.bpe:
            docs = stdlib_docs(tmp / "stdlib.jsonl", 12 << 20)
            # one file in 20 held out: the default 0.0005 of ~600 files would leave one file as val
            out = subprocess.run([sys.executable, "-m", "gpttui", "prepare", str(docs), "--out", str(tmp / "bpe"),
                                  "--val-fraction", "0.05"], check=True, capture_output=True, text=True).stdout
            print(f"gpttui prepare of {docs.stat().st_size / 1e6:.1f} MB of stdlib sources: "
                  f"{out.splitlines()[0].split(': ', 1)[1]}", flush=True)
            bmuon = [int(n) for n in args.bpe_muon_iters.split(",") if n]
            runs = train_all(BPE_RECIPE, tmp / "bpe", tmp, bmuon, args.bpe_adamw_iters, args.eval_interval,
                             args.parallel, None, "bpe")
            report("Table 2: GPT-2 BPE (vocab 50304), 4x128, block 128, Python stdlib sources", runs,
                   sorted({args.bpe_adamw_iters // 2, args.bpe_adamw_iters, *bmuon}))


if __name__ == "__main__":
    main()
