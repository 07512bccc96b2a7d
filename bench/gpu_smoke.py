"""The GPU smoke checks behind bench/gpu_smoke.sh: one PASS / FAIL / SKIP line per check.

Each check runs the installed `gpttui` as a user would, on character data made from the
bundled tiny Shakespeare, in a temporary directory:
  train     50 iterations on the GPU in bfloat16 (float16 below compute capability 8.0), compiled
  resume    the same run resumed to iteration 80 (not compiled: one compile per script)
  fp16      30 iterations in float16 with a GradScaler
  sample    `gpttui sample` from the checkpoint (KV cache), text and a token rate
  greedy    greedy decoding with the KV cache == greedy recomputed from scratch (float32)
  beside    the sampler started (device auto) while a run trains on the same card: it says where
            it samples and why, and the run goes on training
  doctor    `gpttui doctor --json` MFU within 10% of the engine's own per-step MFU (time-weighted)
  ddp       two processes (`--nproc_per_node=2`): train, pause, resume, stop (SKIP with one GPU)
--cpu runs the same checks on the CPU with a smaller model (float32: fp16 is SKIP), as CI does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
GPTTUI = str(Path(sys.executable).with_name("gpttui"))
RESULTS: list[tuple[str, str, str]] = []


def gpttui(*args: str, cwd: Path, timeout: float = 240, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GPTTUI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def events(run: Path, kind: str) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") == kind:
            out.append(e)
    return out


def check(name: str, fn: Callable[[], str]) -> None:
    """Run one check; fn returns a detail line, raises AssertionError (FAIL) or Skip."""
    t0 = time.perf_counter()
    try:
        detail, verdict = fn(), "PASS"
    except Skip as s:
        detail, verdict = str(s), "SKIP"
    except Exception as e:  # a check that crashes is a FAIL with its reason, and the rest still run
        detail, verdict = f"{type(e).__name__}: {e}".splitlines()[0][:300], "FAIL"
        if not isinstance(e, AssertionError):
            traceback.print_exc(file=sys.stderr)
    RESULTS.append((name, verdict, detail))
    print(f"{verdict} {name}: {detail} ({time.perf_counter() - t0:.0f}s)", flush=True)


class Skip(Exception):
    pass


def expect(r: subprocess.CompletedProcess[str], what: str) -> None:
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise AssertionError(f"{what} exited {r.returncode}: {' | '.join(tail)}")


class Smoke:
    def __init__(self, root: Path, cpu: bool):
        self.root, self.cpu = root, cpu
        self.device = "cpu" if cpu else "cuda"
        self.shape = (["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4"] if cpu
                      else ["--n_layer=4", "--n_head=4", "--n_embd=256", "--block_size=256", "--batch_size=32"])
        self.gpus = 0 if cpu else _gpu_count()

    def config(self, out: str, max_iters: int, *extra: str) -> list[str]:
        return ["train", "config.py", f"--out_dir={out}", f"--device={self.device}", f"--max_iters={max_iters}",
                f"--lr_decay_iters={max(max_iters, 100)}", "--eval_interval=25", "--eval_iters=5",
                "--log_interval=1", "--warmup_iters=10", "--learning_rate=1e-3", *self.shape, *extra]

    def prepare(self) -> None:
        (self.root / "config.py").write_text("dataset = 'shakespeare_char'\ndata_dir = 'data'\ndropout = 0.0\n")
        r = gpttui("prepare", str(REPO / "gpttui" / "assets" / "tinyshakespeare.txt"), "--tokenizer", "char",
                   "--out", "data", cwd=self.root)
        expect(r, "gpttui prepare")

    def train(self) -> str:
        compile_ = "--compile=False" if self.cpu else "--compile=True"
        r = gpttui(*self.config("run", 50, compile_), cwd=self.root, timeout=300)
        expect(r, "gpttui train")
        hello = events(self.root / "run", "hello")[-1]
        steps = events(self.root / "run", "step")
        assert len(steps) == 50 and all(s["loss"] == s["loss"] for s in steps), "50 finite steps"
        assert steps[-1]["loss"] < steps[0]["loss"], f"loss did not fall ({steps[0]['loss']} -> {steps[-1]['loss']})"
        if not self.cpu:
            assert hello["device"].startswith("cuda:"), f"device {hello['device']}"
            assert "compiling the model" in r.stdout and "falls back" not in r.stdout, "compiled"
        return (f"{hello['device']} {hello.get('device_name')} {hello['dtype']} ({hello.get('dtype_reason')}); "
                f"loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}; "
                f"{statistics.median(s['dt_ms'] for s in steps[10:]):.1f} ms/iter")

    def resume(self) -> str:
        r = gpttui("train", "run", "--max_iters=80", "--compile=False", cwd=self.root, timeout=300)
        expect(r, "gpttui train RUN (resume)")
        iters = [s["iter"] for s in events(self.root / "run", "step")]
        assert max(iters) == 79 and iters.count(50) == 1, f"resumed steps {iters[-3:]}"
        return f"50 -> 80, {r.stdout.count('iter ')} log lines"

    def fp16(self) -> str:
        if self.cpu:
            raise Skip("the CPU trains in float32")
        r = gpttui(*self.config("run16", 30, "--dtype=float16", "--compile=False"), cwd=self.root)
        expect(r, "gpttui train --dtype=float16")
        steps = events(self.root / "run16", "step")
        hello = events(self.root / "run16", "hello")[-1]
        assert hello["dtype"] == "float16" and len(steps) == 30, f"{hello['dtype']}, {len(steps)} steps"
        assert all(s["loss"] == s["loss"] for s in steps), "finite losses"
        return f"float16 ({hello.get('dtype_reason')}); loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}"

    def sample(self) -> str:
        r = gpttui("sample", "--out_dir=run", f"--device={self.device}", "--max_new_tokens=200", "--num_samples=2",
                   "--seed=7", cwd=self.root)
        expect(r, "gpttui sample")
        assert len(r.stdout.strip()) > 200, "text"
        rate = [line for line in r.stderr.splitlines() if "tokens/s" in line]
        return rate[-1] if rate else "no rate line"

    def greedy(self) -> str:
        code = (
            "import sys, torch\n"
            "from gpttui.engine.generate import generate\n"
            "from gpttui.engine.sample import load\n"
            "m = load('run/ckpt.pt', device=sys.argv[1], dtype='float32')\n"
            "prompt = [1, 2, 3]\n"
            "cached = list(generate(m.model, prompt, 120, temperature=0))\n"
            "idx = torch.tensor([prompt], device=m.device)\n"
            "with torch.no_grad():\n"
            "    for _ in range(120):\n"
            "        logits, _ = m.model(idx[:, -m.model.config.block_size:])\n"
            "        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)\n"
            "again = idx[0, 3:].tolist()\n"
            "first = next((i for i, (a, b) in enumerate(zip(cached, again)) if a != b), None)\n"
            "print(m.device, len(cached), first)\n")
        r = subprocess.run([sys.executable, "-c", code, self.device], cwd=self.root, capture_output=True, text=True,
                           timeout=240)
        expect(r, "greedy decode")
        device, n, first = r.stdout.split()
        assert first == "None", f"first differing token at {first}"
        return f"{n} tokens identical on {device} (past block_size {self.shape[3].split('=')[1]}: window slid)"

    def beside(self) -> str:
        proc = subprocess.Popen([GPTTUI, *self.config("live", 1_000_000, "--compile=False")], cwd=self.root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            live = self.root / "live"
            _wait(lambda: (live / "ckpt.pt").exists() and len(events(live, "step")) > 30, 240, "a checkpoint")
            before = events(live, "step")[-1]["iter"]
            r = gpttui("sample", "--out_dir=live", "--max_new_tokens=100", cwd=self.root)
            expect(r, "gpttui sample beside training")
            where = next((line for line in r.stderr.splitlines() if line.startswith("loaded ")), "")
            assert where, "the sampler said where it samples"
            time.sleep(2)
            after = events(live, "step")[-1]["iter"]
            assert proc.poll() is None and after > before, f"training went on ({before} -> {after})"
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            assert code == 128 + signal.SIGTERM, f"gpttui train exited {code} after SIGTERM (a signal stop: 143)"
            assert events(live, "state")[-1]["state"] == "stopped"
            device = where.rsplit(") in ", 1)[0].split("; ")[-1]  # "cuda:0: bfloat16 on ...: needs ..." / "cpu: CPU"
            return f"sampled on {device}; training {before} -> {after} meanwhile, then stopped cleanly"
        finally:
            if proc.poll() is None:
                proc.kill()

    def doctor(self) -> str:
        r = gpttui("doctor", "run", "--json", cwd=self.root)
        expect(r, "gpttui doctor")
        mfu = json.loads(r.stdout)["mfu"]["mfu"]
        starts = {e["iter"] for e in events(self.root / "run", "hello")}
        steps = [s for s in events(self.root / "run", "step") if not any(st <= s["iter"] < st + 5 for st in starts)]
        # the engine's per-step MFU weighted by step time: its FLOPs over its time, as the doctor averages
        engine = sum(s["mfu"] * s["dt_ms"] for s in steps) / sum(s["dt_ms"] for s in steps)
        assert mfu is not None and abs(mfu - engine) <= 0.1 * engine, f"doctor {mfu} vs engine {engine:.4f}"
        return f"doctor {mfu:.2%} vs engine {engine:.2%} (per-step MFU weighted by step time, after warm-up)"

    def ddp(self) -> str:
        if not self.cpu and self.gpus < 2:
            raise Skip(f"{self.gpus} GPU(s): two are needed")
        extra = ["--nproc_per_node=2", "--compile=False", "--gradient_accumulation_steps=2"]
        proc = subprocess.Popen([GPTTUI, *self.config("ddp", 1_000_000, *extra)], cwd=self.root,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        run = self.root / "ddp"
        assert proc.stdin is not None
        try:
            _wait(lambda: (run / "metrics.jsonl").exists() and len(events(run, "step")) >= 5, 240, "5 steps")
            proc.stdin.write('{"cmd": "pause"}\n')
            proc.stdin.flush()
            _wait(lambda: any(e["state"] == "paused" for e in events(run, "state")), 60, "paused")
            held = events(run, "step")[-1]["iter"]
            time.sleep(2)
            assert events(run, "step")[-1]["iter"] == held, "both ranks held while paused"
            proc.stdin.write('{"cmd": "resume"}\n{"cmd": "stop"}\n')
            proc.stdin.flush()
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"exited {proc.returncode}: {err.strip().splitlines()[-1:]}"
            hello = events(run, "hello")[-1]
            iters = [s["iter"] for s in events(run, "step")]
            assert hello["world_size"] == 2 and sorted(iters) == list(range(len(iters))), "one stream"
            assert events(run, "state")[-1]["state"] == "stopped" and "Traceback" not in out + err
            return f"world_size 2 on {hello['device_name']}; paused at {held}, stopped at {len(iters)}"
        finally:
            if proc.poll() is None:
                proc.kill()


def _gpu_count() -> int:
    r = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                       capture_output=True, text=True)
    return int(r.stdout.strip() or 0)


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, IndexError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="dry run on the CPU (CI)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gpttui-smoke-"))
    smoke = Smoke(root, args.cpu)
    print(f"gpttui GPU smoke ({'CPU dry run' if args.cpu else f'{smoke.gpus} GPU(s)'}) in {root}", flush=True)
    try:
        smoke.prepare()
        for name in ("train", "resume", "fp16", "sample", "greedy", "beside", "doctor", "ddp"):
            check(name, getattr(smoke, name))
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(root)])
    counts = {v: sum(1 for _, got, _ in RESULTS if got == v) for v in ("PASS", "SKIP", "FAIL")}
    failed = [n for n, v, _ in RESULTS if v == "FAIL"]
    print("smoke: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
