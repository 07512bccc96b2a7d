"""Peak FLOP/s of common GPUs, torch-free, so the doctor can recompute MFU for any log.

Dense tensor-core figures from the vendors' datasheets with fp32 accumulate (float32 means
TF32). The same table as gpttui/engine/hardware.py, which also measures unknown devices;
this module is what the UI side (no torch) can import.
"""

from __future__ import annotations

NANOGPT_A100_PEAK = 312e12  # nanoGPT's estimate_mfu divides by this, whatever the card

T = 1e12
# name fragment (lowercase, most specific first) -> {dtype: peak FLOP/s}
GPU_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("h200", {"bfloat16": 989 * T, "float16": 989 * T, "float32": 494 * T}),
    ("h100 pcie", {"bfloat16": 756 * T, "float16": 756 * T, "float32": 378 * T}),
    ("h100 nvl", {"bfloat16": 835 * T, "float16": 835 * T, "float32": 418 * T}),
    ("h100", {"bfloat16": 989 * T, "float16": 989 * T, "float32": 494 * T}),
    ("gh200", {"bfloat16": 989 * T, "float16": 989 * T, "float32": 494 * T}),
    ("a100", {"bfloat16": 312 * T, "float16": 312 * T, "float32": 156 * T}),
    ("a10g", {"bfloat16": 70 * T, "float16": 70 * T, "float32": 35 * T}),
    ("a10", {"bfloat16": 125 * T, "float16": 125 * T, "float32": 62.5 * T}),
    ("l40s", {"bfloat16": 362 * T, "float16": 362 * T, "float32": 183 * T}),
    ("l40", {"bfloat16": 181 * T, "float16": 181 * T, "float32": 90.5 * T}),
    ("l4", {"bfloat16": 121 * T, "float16": 121 * T, "float32": 60 * T}),
    ("v100", {"float16": 125 * T, "float32": 15.7 * T}),
    ("t4", {"float16": 65 * T, "float32": 8.1 * T}),
    ("rtx 6000 ada", {"bfloat16": 364 * T, "float16": 364 * T, "float32": 91 * T}),
    ("a6000", {"bfloat16": 155 * T, "float16": 155 * T, "float32": 77 * T}),
    ("5090", {"bfloat16": 209.5 * T, "float16": 209.5 * T, "float32": 104.8 * T}),
    ("5080", {"bfloat16": 112.6 * T, "float16": 112.6 * T, "float32": 56.3 * T}),
    ("5070 ti", {"bfloat16": 87.9 * T, "float16": 87.9 * T, "float32": 44 * T}),
    ("5070", {"bfloat16": 61.7 * T, "float16": 61.7 * T, "float32": 30.9 * T}),
    ("5060 ti", {"bfloat16": 47.4 * T, "float16": 47.4 * T, "float32": 23.7 * T}),
    ("4090", {"bfloat16": 165.2 * T, "float16": 165.2 * T, "float32": 82.6 * T}),
    ("4080 super", {"bfloat16": 104.4 * T, "float16": 104.4 * T, "float32": 52.2 * T}),
    ("4080", {"bfloat16": 97.5 * T, "float16": 97.5 * T, "float32": 48.7 * T}),
    ("4070 ti super", {"bfloat16": 88.2 * T, "float16": 88.2 * T, "float32": 44.1 * T}),
    ("4070 ti", {"bfloat16": 80.2 * T, "float16": 80.2 * T, "float32": 40.1 * T}),
    ("4070 super", {"bfloat16": 70.8 * T, "float16": 70.8 * T, "float32": 35.4 * T}),
    ("4070", {"bfloat16": 58.3 * T, "float16": 58.3 * T, "float32": 29.1 * T}),
    ("4060 ti", {"bfloat16": 44.1 * T, "float16": 44.1 * T, "float32": 22.1 * T}),
    ("4060", {"bfloat16": 30.2 * T, "float16": 30.2 * T, "float32": 15.1 * T}),
    ("3090 ti", {"bfloat16": 80 * T, "float16": 80 * T, "float32": 40 * T}),
    ("3090", {"bfloat16": 71 * T, "float16": 71 * T, "float32": 35.6 * T}),
    ("3080 ti", {"bfloat16": 68.2 * T, "float16": 68.2 * T, "float32": 34.1 * T}),
    ("3080", {"bfloat16": 59.5 * T, "float16": 59.5 * T, "float32": 29.8 * T}),
    ("3070 ti", {"bfloat16": 43.5 * T, "float16": 43.5 * T, "float32": 21.7 * T}),
    ("3070", {"bfloat16": 40.6 * T, "float16": 40.6 * T, "float32": 20.3 * T}),
    ("3060 ti", {"bfloat16": 32.4 * T, "float16": 32.4 * T, "float32": 16.2 * T}),
    ("3060", {"bfloat16": 25.6 * T, "float16": 25.6 * T, "float32": 12.7 * T}),
]


def table_peak(name: str, dtype: str = "bfloat16") -> float | None:
    """Peak FLOP/s for a device name ('NVIDIA GeForce RTX 4070', '4070', 'a100') and dtype."""
    low = " ".join(name.lower().replace("-", " ").split())
    for fragment, peaks in GPU_PEAKS:
        if fragment in low:
            return peaks.get(dtype) or peaks.get("float16")
    return None
