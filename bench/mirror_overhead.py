"""Does mirroring a run to W&B / TensorBoard slow training? `python bench/mirror_overhead.py`

Trains the same tiny character model headless (`gpttui train`, CPU, one thread) with no mirror,
with TensorBoard + W&B offline, and with W&B pointed at a local server that accepts and never
answers (a hung network); each mode several times, interleaved. Prints the median time per
iteration (the engine's own dt_ms, every iteration after the first few, evals excluded) and
each mode's ratio to no mirror measured in the same run; and the wall time of each command,
which shows what a hung W&B adds at the end of a run.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import char_data

REPEATS = 3
ITERS = 300
MODES = {
    "no mirror": ({}, {}),
    "tensorboard + wandb offline": ({"tensorboard_log": "true", "wandb_log": "true"}, {"WANDB_MODE": "offline"}),
    "wandb, server never answers": ({"wandb_log": "true"}, {"WANDB_MODE": "online", "WANDB_API_KEY": "a" * 40}),
}


def silent_server() -> int:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
    return server.getsockname()[1]


def train(work: Path, data: Path, name: str, keys: dict[str, str], env: dict[str, str]) -> tuple[list[float], float]:
    out = work / name
    config = work / f"{name}.toml"
    config.write_text("\n".join([
        f'data_dir = "{data}"', f'out_dir = "{out}"', 'device = "cpu"', "compile = false", 'dtype = "float32"',
        "threads = 1", "n_layer = 2", "n_head = 2", "n_embd = 64", "block_size = 64", "batch_size = 8",
        "gradient_accumulation_steps = 1", f"max_iters = {ITERS}", "eval_interval = 100", "eval_iters = 5",
        "log_interval = 1", "warmup_iters = 10", f"lr_decay_iters = {ITERS}", *(f"{k} = {v}" for k, v in keys.items()),
    ]) + "\n")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpttui", "train", str(config)], check=True, capture_output=True,
                   env={**os.environ, "HOME": str(work / "home"), "WANDB_SILENT": "true", **env})
    wall = time.perf_counter() - t0
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    dts = [e["dt_ms"] for e in events if e["type"] == "step" and e["iter"] >= 5 and e["iter"] % 100]
    return dts, wall


def main() -> None:
    port = silent_server()
    MODES["wandb, server never answers"][1]["WANDB_BASE_URL"] = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = char_data(work / "data", n_chars=200_000)
        dt: dict[str, list[float]] = {m: [] for m in MODES}
        walls: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(REPEATS):
            for i, (mode, (keys, env)) in enumerate(MODES.items()):
                d, w = train(work, data, f"run{r}_{i}", keys, env)
                dt[mode].append(statistics.median(d))
                walls[mode].append(w)
        base = statistics.median(dt["no mirror"])
        print(f"tiny model, {ITERS} iterations, CPU, 1 thread; median of {REPEATS} runs each")
        for mode in MODES:
            med = statistics.median(dt[mode])
            print(f"  {mode:30s} {med:7.3f} ms/iter  x{med / base:5.3f}   command wall {statistics.median(walls[mode]):5.1f} s")


if __name__ == "__main__":
    main()
