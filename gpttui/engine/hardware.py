"""The device, its training dtype, and its peak FLOP/s, so MFU means something.

nanoGPT divides by an A100's 312 TFLOP/s whatever the card. Here the peak comes from, in
order: the config's `peak_flops`, the table of GPUs by name and dtype in gpttui/peaks.py
(dense tensor-core figures, fp32 accumulate; float32 means TF32, which the trainer enables
as nanoGPT does), or a short measured matmul (the CPU, unknown GPUs), cached per machine,
thread count and torch version.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gpttui.peaks import table_peak  # the GPU table, shared with the torch-free doctor

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpttui" / "peak_flops.json"


@dataclass
class Device:
    """Where and how the engine trains."""

    device: str        # 'cpu', 'cuda', 'cuda:1', 'mps'
    device_type: str   # 'cpu', 'cuda', 'mps' (for autocast)
    dtype: str         # the dtype actually used: 'float32', 'bfloat16', 'float16'
    name: str          # human name, e.g. 'NVIDIA GeForce RTX 4090' or the CPU model
    note: str = ""     # why the dtype differs from the one asked for, if it does


def pick(device: str, dtype: str) -> Device:
    """Resolve 'auto' device and dtype. On the CPU training always runs float32: half-precision
    matmuls there are 8-100x slower than fp32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device_type = device.split(":")[0]
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device: 'cuda' asked for, but torch sees no CUDA GPU (use --device=cpu or auto)")
        name = torch.cuda.get_device_name(torch.device(device))
        if dtype == "auto":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return Device(device, device_type, dtype, name)
    if device_type == "mps":
        if not torch.backends.mps.is_available():
            raise RuntimeError("device: 'mps' asked for, but torch sees no Apple GPU")
        return Device(device, device_type, "float32" if dtype == "auto" else dtype, "Apple GPU (mps)")
    note = ""
    if dtype not in ("auto", "float32"):
        note = f"dtype {dtype} asked for; the CPU trains in float32 (half-precision matmuls are far slower there)"
    return Device("cpu", "cpu", "float32", cpu_name(), note)


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
    key = f"{dev.name}|{dev.dtype}|threads={threads or torch.get_num_threads()}|torch={torch.__version__}"
    cache = _read_cache()
    if key not in cache:
        cache[key] = measure_matmul_peak(dev)
        _write_cache(cache)
    return cache[key], f"measured {dev.dtype} matmul on {dev.name}"


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


def _read_cache() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(CACHE.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _write_cache(cache: dict[str, float]) -> None:
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_name(f".{CACHE.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(CACHE)
    except OSError:
        pass  # a read-only home only costs a re-measurement next time


def auto_threads() -> int:
    """CPU threads for training when the config says 0 (see README: measured on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)
