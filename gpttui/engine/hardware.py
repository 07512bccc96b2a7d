"""The device, its training dtype, and its peak FLOP/s, so MFU means something.

nanoGPT divides by an A100's 312 TFLOP/s whatever the card. Here the peak comes from, in
order: the config's `peak_flops`, the table of GPUs by name and dtype in gpttui/peaks.py
(dense tensor-core figures, fp32 accumulate; float32 means TF32, which the trainer enables
as nanoGPT does), or a short measured matmul (the CPU, unknown GPUs): the best of the first few engine
starts, cached per machine, thread count and torch version.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gpttui.analysis.peaks import table_peak  # the GPU table, shared with the torch-free doctor
from gpttui.fs import atomic

MEASUREMENTS = 3  # engine starts that measure the CPU's peak before the cached best is trusted
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpttui" / "peak_flops.json"


class DeviceError(RuntimeError):
    """The configured device can't be had here (no CUDA, no such index)."""


@dataclass
class Device:
    """Where and how the engine trains."""

    device: str        # 'cpu', 'cuda:0', 'cuda:1', 'mps': a CUDA device always has its index
    device_type: str   # 'cpu', 'cuda', 'mps' (for autocast)
    dtype: str         # the dtype actually used: 'float32', 'bfloat16', 'float16'
    name: str          # human name, e.g. 'NVIDIA GeForce RTX 4090' or the CPU model
    note: str = ""     # why the dtype differs from the one asked for, if it does
    dtype_reason: str = ""  # why this dtype, in a few words (shown beside it)
    index: int | None = None  # the CUDA device index


def pick(device: str, dtype: str, local_rank: int | None = None) -> Device:
    """Resolve the configured device and dtype once, to what this process will really use.

    'cuda' and 'auto' become 'cuda:N' (torch.cuda.set_device refuses a device without an index):
    N is `local_rank` under torchrun (one GPU per process), else the current device. On the CPU
    training always runs float32: half-precision matmuls there are 8-100x slower than fp32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device_type = device.split(":")[0]
    if device_type == "cuda":
        index = cuda_index(device, local_rank)
        name = torch.cuda.get_device_name(index)
        dtype, reason, note = cuda_dtype(dtype, torch.cuda.get_device_capability(index), name)
        return Device(f"cuda:{index}", "cuda", dtype, name, note, reason, index)
    if device_type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("device: 'mps' asked for, but torch sees no Apple GPU")
        dtype = "float32" if dtype == "auto" else dtype
        return Device(device, device_type, dtype, "Apple GPU (mps)", dtype_reason="as configured")
    if device_type != "cpu":
        raise DeviceError(f"device: {device!r} is not one of cpu, cuda, cuda:N, mps, auto")
    note = ""
    if dtype not in ("auto", "float32"):
        note = f"dtype {dtype} asked for; the CPU trains in float32 (half-precision matmuls are far slower there)"
    return Device("cpu", "cpu", "float32", cpu_name(), note, "the CPU's fast path")


def cuda_index(device: str, local_rank: int | None = None) -> int:
    """The CUDA device index for 'cuda' or 'cuda:N', checked against the GPUs torch sees."""
    if not torch.cuda.is_available():
        raise DeviceError(f"device: {device!r} asked for, but torch sees no CUDA GPU "
                          f"(use --device=cpu or auto)")
    count = torch.cuda.device_count()
    _, _, rest = device.partition(":")
    if local_rank is not None:
        index = local_rank  # torchrun: one GPU per process, whatever the config names
    elif rest:
        if not rest.isdigit():
            raise DeviceError(f"device: {device!r}: expected cuda or cuda:N with N a GPU index")
        index = int(rest)
    else:
        index = torch.cuda.current_device()
    if index >= count:
        raise DeviceError(f"device: cuda:{index} asked for, but torch sees {count} CUDA GPU(s) "
                          f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    return index


def cuda_dtype(dtype: str, capability: tuple[int, int], name: str) -> tuple[str, str, str]:
    """(dtype, reason, note). torch.cuda.is_bf16_supported() says True below compute capability
    8.0 too (T4, V100), where bfloat16 is emulated and slow: there float16 with a GradScaler."""
    cc = f"{capability[0]}.{capability[1]}"
    native_bf16 = capability >= (8, 0)
    if dtype == "auto":
        if native_bf16:
            return "bfloat16", f"native on compute capability {cc}", ""
        return "float16", f"compute capability {cc} has no native bfloat16; GradScaler on", ""
    if dtype == "bfloat16" and not native_bf16:
        return ("float16", f"compute capability {cc} has no native bfloat16; GradScaler on",
                f"dtype bfloat16 asked for, but {name} (compute capability {cc}) only emulates it: "
                f"training in float16 with a GradScaler instead")
    if dtype == "float32":
        return dtype, "as configured; TF32 matmuls" if native_bf16 else "as configured", ""
    return dtype, "as configured" + ("; GradScaler on" if dtype == "float16" else ""), ""


GIB = 1 << 30
CUDA_CONTEXT_BYTES = 768 << 20  # a CUDA context plus cuBLAS workspaces, before any tensor
PROBE = ("import json, sys, torch\n"
         "i = torch.cuda.current_device() if len(sys.argv) < 2 else int(sys.argv[1])\n"
         "free, total = torch.cuda.mem_get_info(i)\n"
         "print(json.dumps({'index': i, 'name': torch.cuda.get_device_name(i), 'free': free, 'total': total,\n"
         "                  'capability': list(torch.cuda.get_device_capability(i))}))\n")


@dataclass
class GpuMemory:
    """One GPU as a newcomer to it would find it: its free memory right now."""

    index: int
    name: str
    capability: tuple[int, int]
    free: int
    total: int


def probe_gpu(index: int | None = None) -> GpuMemory | None:
    """torch.cuda.mem_get_info of a GPU, asked in a short child process: the question itself
    creates a CUDA context, and a sampler that then decides on the CPU must not keep one
    (hundreds of MB) on a card a training run has nearly filled. None without a usable GPU."""
    if not torch.cuda.is_available():
        return None
    argv = [sys.executable, "-c", PROBE, *([str(index)] if index is not None else [])]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        d = json.loads(r.stdout.strip().splitlines()[-1])
        return GpuMemory(int(d["index"]), str(d["name"]), (int(d["capability"][0]), int(d["capability"][1])),
                         int(d["free"]), int(d["total"]))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError):
        return None


def inference_bytes(n_params: int, n_layer: int, n_embd: int, block_size: int, vocab_size: int,
                    bytes_per_value: int = 2) -> int:
    """GPU memory a KV-cached sampler needs for one sequence: half-precision weights, the
    cache of keys and values, fp32 logits, and the CUDA context itself."""
    weights = n_params * bytes_per_value
    cache = 2 * n_layer * block_size * n_embd * bytes_per_value
    activations = block_size * (4 * n_embd + vocab_size) * 4  # a full-window prefill
    return weights + cache + activations + CUDA_CONTEXT_BYTES


def sampler_device(need: int, gpu: GpuMemory | None) -> tuple[str, str, str]:
    """(device, dtype, why) for a sampler that may share its GPU with a training run: the GPU
    only if it keeps a margin free (a training run's memory grows at eval and checkpoint
    time, and running it out of memory costs far more than sampling on the CPU)."""
    if gpu is None:
        return "cpu", "float32", "no CUDA GPU"
    margin = max(GIB, gpu.total // 10)
    dtype = "bfloat16" if gpu.capability >= (8, 0) else "float16"
    if gpu.free - need >= margin:
        return (f"cuda:{gpu.index}", dtype, f"{dtype} on {gpu.name}: needs {need / GIB:.1f} GiB, "
                f"{gpu.free / GIB:.1f} GiB free")
    return "cpu", "float32", (f"CPU: {gpu.name} has {gpu.free / GIB:.1f} GiB free, {need / GIB:.1f} GiB "
                              f"needed plus a {margin / GIB:.1f} GiB margin for the run training there")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def peak_flops(dev: Device, configured: float = 0.0, threads: int = 0) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from)."""
    if configured > 0:
        return configured, "config peak_flops"
    if dev.device_type == "cuda":
        peak = table_peak(dev.name, dev.dtype)
        if peak:
            return peak, f"{dev.name} {dev.dtype} datasheet"
    n_threads = threads or torch.get_num_threads()
    key = _cache_key(dev, n_threads)
    cache = _read_cache()
    peak, n = cache.get(key, (0.0, 0))
    if n < MEASUREMENTS:  # a busy machine measures low: keep the best of a few starts
        peak, n = max(peak, measure_matmul_peak(dev)), n + 1
        cache[key] = (peak, n)
        _write_cache(cache)
    # more threads never have a lower peak than fewer (a measurement under load can say so,
    # and would then overstate every MFU)
    fewer = [p for t in range(1, n_threads) if (p := cache.get(_cache_key(dev, t), (0.0, 0))[0])]
    return max([peak, *fewer]), f"measured {dev.dtype} matmul on {dev.name}"


def _cache_key(dev: Device, threads: int) -> str:
    return f"{dev.name}|{dev.dtype}|threads={threads}|torch={torch.__version__}"


def measure_matmul_peak(dev: Device, seconds: float = 0.4) -> float:
    """Best FLOP/s of a square matmul over ~`seconds` (the achievable peak, not the datasheet's)."""
    n = 1024 if dev.device_type == "cpu" else 4096
    dtype = getattr(torch, dev.dtype)
    a = torch.randn(n, n, device=dev.device, dtype=dtype)
    b = torch.randn(n, n, device=dev.device, dtype=dtype)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 / dt)
        if t0 > deadline:
            return best


def _sync(dev: Device) -> None:
    if dev.device_type == "cuda":
        torch.cuda.synchronize(dev.device)
    elif dev.device_type == "mps":
        torch.mps.synchronize()


def _read_cache() -> dict[str, tuple[float, int]]:
    """key -> (best peak measured, how many times it was measured)."""
    try:
        entries = {k: (float(v[0]), int(v[1])) for k, v in json.loads(CACHE.read_text()).items()}
    except (OSError, ValueError, AttributeError, TypeError, IndexError, KeyError):
        return {}
    return {k: (p, n) for k, (p, n) in entries.items() if math.isfinite(p) and p > 0 and n > 0}


def _write_cache(cache: dict[str, tuple[float, int]]) -> None:
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(CACHE, json.dumps({k: list(v) for k, v in cache.items()}, indent=1))
    except OSError:
        pass  # a read-only home only costs a re-measurement next time


def auto_threads() -> int:
    """CPU threads to start with when the config says 0: every core, as nanoGPT (ThreadTuner
    then backs off by one if that turns out slower)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


class ThreadTuner:
    """Automatic CPU threads: measures `high` against `high - 1` threads and keeps the faster.

    On a few cores shared with busy processes (a dashboard, a sampler, other users), torch's
    OpenMP threads spin-wait for a preempted sibling, and all cores become many times slower
    than one fewer (measured on 2 busy cores, nanoGPT's CPU recipe: 1 thread 58-105 ms/iter,
    2 threads 230-840 ms/iter), while on an idle machine all cores are ~1.7x faster (43 vs
    73 ms/iter). No fixed choice is right, so: run `window` iterations, try the other count
    for up to `window` iterations (abandoned after 2 if clearly slower), switch if it is 10%
    faster. Probes repeat, spaced from `interval_s` doubling up to `max_interval_s` while
    nothing changes, so a probe of the slow setting costs little.
    """

    def __init__(self, high: int, window: int = 8, interval_s: float = 20.0,
                 max_interval_s: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self.choices = (high, high - 1)
        self.current = high
        self.window = window
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self.interval = interval_s
        self.clock = clock
        self.base: deque[float] = deque(maxlen=window)
        self.trial: list[float] = []
        self.trying: int | None = None
        self.skip = 1  # the first iteration after a change pays for it: not measured
        self.next_probe = clock()  # the first probe as soon as a window is measured

    def observe(self, dt: float) -> tuple[int, str] | None:
        """Feed one iteration's seconds; returns (threads to set, a note or "") on a change."""
        if self.skip:
            self.skip -= 1
            return None
        if self.trying is None:
            self.base.append(dt)
            if len(self.base) == self.window and self.clock() >= self.next_probe:
                self.trying = self.choices[1] if self.current == self.choices[0] else self.choices[0]
                self.trial, self.skip = [], 1
                return self.trying, ""
            return None
        self.trial.append(dt)
        ref, got = statistics.median(self.base), statistics.median(self.trial)
        if len(self.trial) < self.window and not (len(self.trial) >= 2 and got > 1.5 * ref):
            return None
        tried, self.trying, self.skip = self.trying, None, 1
        if got < 0.9 * ref:
            old, self.current = self.current, tried
            self.base = deque(self.trial, maxlen=self.window)
            self.interval = self.interval_s
            self.next_probe = self.clock() + self.interval
            return tried, (f"{tried} CPU thread(s) run faster than {old} here now "
                           f"({got * 1e3:.0f} vs {ref * 1e3:.0f} ms/iter): using {tried}")
        self.base.clear()
        self.interval = min(2 * self.interval, self.max_interval_s)
        self.next_probe = self.clock() + self.interval
        return self.current, ""
