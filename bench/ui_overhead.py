"""What the dashboard costs a run, how fast it shows, and whether it keeps up.

1. Throughput: ms/iter of the same small CPU config (the demo's model: 4 layers x 128, block 64,
   batch 12, char Shakespeare) trained by `gpttui train` headless and by `gpttui launch` with
   the dashboard open in a real terminal (tmux, 120x40), alternating, several runs each;
   medians and their ratio (goal: within 3%). ms/iter is wall time between the first and last
   step events of metrics.jsonl after a warm-up, so everything the run pays is in it; the UI
   process's CPU is measured over the same window (what the dashboard costs while a run trains,
   its start-up left out).
2. Time to first frame: from starting `gpttui launch RUN_DIR` in tmux until the status line is
   on the screen (median of several).
3. Load: a scripted emitter writes 1000 step events a second into the headless app; the lag
   between an event's emission and the UI having applied it, the UI's CPU, and chart redraws.

    python bench/ui_overhead.py [--iters 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import char_data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
GPTTUI = [sys.executable, "-m", "gpttui"]
WARMUP = 20


def make_config(work: Path, iters: int) -> Path:
    data = char_data(work / "data")
    cfg = work / "bench.toml"
    cfg.write_text(
        f'out_dir = "{work / "run"}"\ndata_dir = "{data}"\ndataset = "shakespeare_char"\n'
        "n_layer = 4\nn_head = 4\nn_embd = 128\nblock_size = 64\nbatch_size = 12\n"
        "gradient_accumulation_steps = 1\ndropout = 0.0\ndevice = \"cpu\"\ndtype = \"float32\"\n"
        f"compile = false\nlearning_rate = 1e-3\nmin_lr = 1e-4\nwarmup_iters = 10\nmax_iters = {iters}\n"
        f"lr_decay_iters = {iters}\neval_interval = {iters}\neval_iters = 5\nlog_interval = 10\n"
        "always_save_checkpoint = false\n")
    return cfg


def ms_per_iter(run_dir: Path) -> float:
    steps = [e for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if e["type"] == "step" and e["iter"] >= WARMUP]
    return 1000 * (steps[-1]["t"] - steps[0]["t"]) / (steps[-1]["iter"] - steps[0]["iter"])


def last_step(run_dir: Path) -> int:
    """The iteration of the last step event written so far (-1 before the first)."""
    m = run_dir / "metrics.jsonl"
    if not m.exists():
        return -1
    with m.open("rb") as f:
        f.seek(max(0, m.stat().st_size - 4096))
        tail = f.read().decode(errors="replace").splitlines()
    steps = [json.loads(line) for line in tail[1:] if line.startswith('{"type":"step"')]
    return steps[-1]["iter"] if steps else -1


def finished(run_dir: Path) -> bool:
    m = run_dir / "metrics.jsonl"
    return m.exists() and any('"state":"finished"' in line or '"state":"failed"' in line
                              for line in m.read_text().splitlines()[-3:])


def run_headless(cfg: Path, out: Path) -> float:
    subprocess.run([*GPTTUI, "train", str(cfg), f"--out_dir={out}"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return ms_per_iter(out)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def alive(session: str) -> bool:
    return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0


def ui_process(session: str):
    """The `gpttui launch` process running in the tmux session (psutil.Process)."""
    import psutil

    pane = psutil.Process(int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0]))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for p in [pane, *pane.children(recursive=True)]:
            if "launch" in p.cmdline():
                return p
        time.sleep(0.05)
    raise RuntimeError("no gpttui launch process in the tmux pane")


def run_dashboard(cfg: Path, out: Path, session: str) -> tuple[float, float]:
    """ms/iter with the dashboard open, and the UI process's CPU (fraction of a core) meanwhile."""
    cmd = f"{' '.join(GPTTUI)} launch {cfg} --out_dir={out}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        ui = ui_process(session)
        while last_step(out) < WARMUP:   # the same window as ms/iter: the dashboard's start left out
            time.sleep(0.1)
        c0, t0 = sum(ui.cpu_times()[:2]), time.monotonic()
        while not finished(out):
            time.sleep(0.2)
        ui_cpu = (sum(ui.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "q")
        deadline = time.time() + 20
        while time.time() < deadline and alive(session):
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return ms_per_iter(out), ui_cpu


def first_frame(run_dir: Path, session: str) -> float:
    """Seconds from `gpttui launch RUN_DIR` until its status line shows in the terminal."""
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40",
         f"{' '.join(GPTTUI)} launch {run_dir}")
    try:
        while True:
            screen = tmux("capture-pane", "-p", "-t", session)
            if " iter " in screen and "evals" in screen:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > 20:
                raise RuntimeError("no frame after 20 s:\n" + screen)
            time.sleep(0.01)
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], capture_output=True)
        time.sleep(0.3)
        subprocess.run(["tmux", "send-keys", "-t", session, "y"], capture_output=True)
        deadline = time.time() + 20
        while time.time() < deadline and alive(session):
            time.sleep(0.1)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def load(work: Path, rate: int = 1000, seconds: int = 5) -> dict:
    """The headless app fed `rate` events/s by a scripted emitter."""
    from app_helpers import tiny_config
    from test_app_load import emitter

    from gpttui.app import GpttuiApp
    from gpttui.commands.launch import make_plan
    from gpttui.ipc.process import ProtocolProcess
    from gpttui.widgets.loss_chart import LossChart

    script = emitter(rate, seconds)
    plan = make_plan(str(tiny_config(work / "load")), [])
    plan.start = False

    async def go() -> dict:
        app = GpttuiApp(plan)
        async with app.run_test(size=(120, 40)) as pilot:
            ctl = app.controller
            while ctl.loading:
                await pilot.pause(0.05)
            chart = app.screen.query_one(LossChart)
            b0, c0, t0 = chart.builds, time.process_time(), time.monotonic()
            ctl.engine = ProtocolProcess([sys.executable, "-c", script])
            lags = []
            while ctl.engine is not None:
                await asyncio.sleep(0.1)
                if ctl.live._last_t is not None and ctl.live.state == "running":
                    lags.append(time.time() - ctl.live._last_t)
            dt = time.monotonic() - t0
            return {"events": ctl.live.iter, "dropped": ctl.live.dropped,
                    "lag_median_ms": 1000 * statistics.median(lags), "lag_max_ms": 1000 * max(lags),
                    "ui_cpu": (time.process_time() - c0) / dt, "chart_builds_per_s": (chart.builds - b0) / dt}

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed (the dashboard runs in a real terminal): apt-get install tmux")
    work = Path(tempfile.mkdtemp(prefix="gpttui-ui-bench-"))
    try:
        cfg = make_config(work, args.iters)
        headless, ui, ui_cpu = [], [], []
        for r in range(args.runs):
            headless.append(run_headless(cfg, work / f"train{r}"))
            ms, cpu = run_dashboard(cfg, work / f"ui{r}", f"gpttui-bench-{os.getpid()}-{r}")
            ui.append(ms)
            ui_cpu.append(cpu)
            print(f"run {r}: headless {headless[-1]:.2f} ms/iter, dashboard {ui[-1]:.2f} ms/iter "
                  f"(UI process {100 * cpu:.1f}% of a core)", flush=True)
        h, u = statistics.median(headless), statistics.median(ui)
        print(f"throughput ({args.iters} iters, median of {args.runs}): headless {h:.2f} ms/iter, "
              f"dashboard {u:.2f} ms/iter, ratio {u / h:.3f} (goal <= 1.03); UI process "
              f"{100 * statistics.median(ui_cpu):.1f}% of a core; load average {os.getloadavg()[0]:.1f}")

        frames = [first_frame(work / "train0", f"gpttui-frame-{os.getpid()}-{i}") for i in range(args.frames)]
        print(f"first frame of `gpttui launch RUN_DIR`: median {statistics.median(frames):.2f} s "
              f"(min {min(frames):.2f}, max {max(frames):.2f}, {args.frames} runs)")

        r = load(work)
        print(f"load 1000 events/s for 5 s: {r['events']} applied, {r['dropped']} dropped, lag median "
              f"{r['lag_median_ms']:.0f} ms, max {r['lag_max_ms']:.0f} ms; UI CPU {100 * r['ui_cpu']:.0f}% "
              f"of a core; chart rebuilt {r['chart_builds_per_s']:.1f}/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
