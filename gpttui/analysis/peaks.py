"""Peak FLOP/s of common GPUs by exact model, torch-free, so the doctor can recompute MFU for any log.

gpttui/engine/hardware.py uses this table for the device it trains on (and measures a matmul
peak when the name is not in it); the doctor uses it for `--device` and for old logs.

Figures are DENSE tensor-core peaks (not the 2:4-sparsity figures NVIDIA often headlines), per
dtype, with FP32 accumulate, because that is what mixed-precision training runs: GeForce (and
A10G, L40) tensor cores do FP16/BF16 with FP32 accumulate at half their FP16-accumulate rate,
so an RTX 4090 is 165.2 TFLOP/s here, not the 330 of its FP16-accumulate line. `float32` is
the TF32 tensor peak (the engine enables TF32, as nanoGPT); cards without TF32 (Volta, Turing)
give their plain FP32 rate, and cards without bf16 have no `bfloat16` entry (None: the engine
then measures the emulated rate instead of trusting a figure).

Names are matched exactly, never by substring ("RTX A1000" is not an A100, "T400" not a T4):
`model_key` turns what torch.cuda.get_device_name() says ("NVIDIA GeForce RTX 4070 Laptop
GPU", "NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-16GB") or what a user types ("4070 ti super",
"H100 SXM") into one model token plus variant words, and any word it does not know (a "D"
suffix, "MIG", "Max-Q" on a model the table has no Max-Q row for) means no figure.
"""

from __future__ import annotations

import re

T = 1e12


def _peaks(tensor16: float, fp32: float, bf16: bool = True) -> dict[str, float]:
    """{dtype: FLOP/s} from the dense FP16/BF16 tensor figure and the float32 one, in TFLOP/s."""
    peaks = {"float16": tensor16 * T, "float32": fp32 * T}
    if bf16:
        peaks["bfloat16"] = tensor16 * T
    return peaks


def _turing(tensor16: float, fp32: float) -> dict[str, float]:
    """Turing: FP16 tensor cores, no bf16, no TF32 (float32 is the plain FP32 rate)."""
    return _peaks(tensor16, fp32, bf16=False)


# model key (see model_key) -> {dtype: peak FLOP/s}.
# GeForce desktop: NVIDIA's architecture whitepapers (Ampere GA10x, Ada, Blackwell), which give
# each card's "FP16 tensor TFLOPS with FP32 accumulate" = SMs x boost clock x 512; cards the
# whitepapers predate (SUPER refreshes, 3060, 4060, 50-series below the 5090) follow the same
# product of their published SM count and boost clock. TF32 is half of it.
GPU_PEAKS: dict[str, dict[str, float]] = {
    # Turing (reference boost clocks), no TF32 / bf16
    "2060": _turing(25.8, 6.5),
    "2060 super": _turing(28.7, 7.2),
    "2070": _turing(29.9, 7.5),
    "2070 super": _turing(36.2, 9.1),
    "2080": _turing(40.3, 10.1),
    "2080 super": _turing(44.6, 11.2),
    "2080 ti": _turing(53.8, 13.4),
    # Ampere GeForce
    "3060": _peaks(25.5, 12.75),
    "3060 ti": _peaks(32.4, 16.2),
    "3070": _peaks(40.6, 20.3),
    "3070 ti": _peaks(43.5, 21.7),
    "3080": _peaks(59.5, 29.8),
    "3080 ti": _peaks(68.2, 34.1),
    "3090": _peaks(71.0, 35.6),
    "3090 ti": _peaks(80.0, 40.0),
    # Ada GeForce
    "4060": _peaks(30.2, 15.1),
    "4060 ti": _peaks(44.1, 22.1),
    "4070": _peaks(58.3, 29.1),
    "4070 super": _peaks(71.0, 35.5),
    "4070 ti": _peaks(80.2, 40.1),
    "4070 ti super": _peaks(88.2, 44.1),
    "4080": _peaks(97.5, 48.7),
    "4080 super": _peaks(104.4, 52.2),
    "4090": _peaks(165.2, 82.6),
    # Blackwell GeForce
    "5060": _peaks(38.4, 19.2),
    "5060 ti": _peaks(47.4, 23.7),
    "5070": _peaks(61.7, 30.9),
    "5070 ti": _peaks(87.9, 43.9),
    "5080": _peaks(112.6, 56.3),
    "5090": _peaks(209.5, 104.8),
    # Laptop GPUs: the clock, and so the peak, depends on the power limit (TGP) the laptop maker
    # chose; these are the TOP TGP configuration, so a lower-power laptop shows a lower MFU.
    # 30-series: SMs x the top of NVIDIA's boost-clock range x 512.
    "3050 laptop": _peaks(14.3, 7.1),
    "3050 ti laptop": _peaks(17.4, 8.7),
    "3060 laptop": _peaks(26.2, 13.1),
    "3070 laptop": _peaks(33.2, 16.6),
    "3070 ti laptop": _peaks(35.0, 17.5),
    "3080 laptop": _peaks(42.0, 21.0),
    "3080 ti laptop": _peaks(47.2, 23.6),
    # 40-series: NVIDIA's "AI TOPS" (FP8, sparse, FP16 accumulate, at the top TGP) / 8, the
    # same ratio as the desktop cards (4090: 1321 / 8 = 165.2).
    "4050 laptop": _peaks(24.25, 12.1),
    "4060 laptop": _peaks(29.1, 14.6),
    "4070 laptop": _peaks(40.1, 20.1),
    "4080 laptop": _peaks(67.75, 33.9),
    "4090 laptop": _peaks(85.75, 42.9),
    # 50-series: NVIDIA's "AI TOPS" (FP4, sparse, at the top TGP) / 16, the same ratio as the
    # desktop cards (5090: 3352 / 16 = 209.5).
    "5070 laptop": _peaks(49.9, 24.9),
    "5070 ti laptop": _peaks(62.0, 31.0),
    "5080 laptop": _peaks(83.4, 41.7),
    "5090 laptop": _peaks(114.0, 57.0),
    # Workstation (datasheets' sparse tensor figure / 2; full-rate FP32 accumulate)
    "a2000": _peaks(31.95, 16.0),
    "a4000": _peaks(76.7, 38.35),
    "a4500": _peaks(94.6, 47.3),
    "a5000": _peaks(111.1, 55.55),
    "a6000": _peaks(154.85, 77.4),
    "4500 ada": _peaks(158.5, 79.25),   # datasheet FP8 sparse 634 / 4
    "5000 ada": _peaks(261.1, 130.5),   # 1044.4 / 4
    "6000 ada": _peaks(364.2, 182.1),   # 1457 / 4
    # Data centre (datasheets' dense figures)
    "t4": _turing(65.0, 8.1),
    "v100": _turing(125.0, 15.7),        # a bare "V100" is taken as the SXM2 part
    "v100 sxm": _turing(125.0, 15.7),
    "v100 pcie": _turing(112.0, 14.0),
    "v100s": _turing(130.0, 16.4),
    "a10": _peaks(125.0, 62.5),
    "a10g": _peaks(70.0, 35.0),          # AWS's GA102 part, no datasheet: 80 SMs x 1.71 GHz x 512
    "a30": _peaks(165.0, 82.0),
    "a40": _peaks(149.7, 74.8),
    "a100": _peaks(312.0, 156.0),        # PCIe and SXM4, 40 and 80 GB alike
    "l4": _peaks(121.0, 60.0),
    "l40": _peaks(181.05, 90.5),
    "l40s": _peaks(362.05, 183.0),
    "h100": _peaks(989.4, 494.7),        # torch names the SXM5 part "H100 80GB HBM3"
    "h100 sxm": _peaks(989.4, 494.7),
    "h100 pcie": _peaks(756.0, 378.0),
    "h100 nvl": _peaks(835.5, 417.5),
    "h200": _peaks(989.4, 494.7),        # the SXM part; torch says "NVIDIA H200"
    "h200 sxm": _peaks(989.4, 494.7),
    "h200 nvl": _peaks(835.5, 417.5),
    "gh200": _peaks(989.4, 494.7),
}

_NOISE = {"nvidia", "geforce", "tesla", "quadro", "rtx", "gtx", "gpu", "graphics", "generation",
          "with", "design", "hbm2", "hbm2e", "hbm3", "hbm3e"}
_VARIANTS = {"ti": "ti", "super": "super", "ada": "ada", "laptop": "laptop", "mobile": "laptop",
             "maxq": "maxq", "pcie": "pcie", "sxm": "sxm", "sxm2": "sxm", "sxm4": "sxm", "sxm5": "sxm",
             "sxm3": "sxm3", "nvl": "nvl"}
_ORDER = ("ti", "super", "ada", "laptop", "maxq", "pcie", "sxm", "sxm3", "nvl")
_FORMS = ("pcie", "sxm", "sxm3", "nvl")            # form factors: they matter only for some models
_MEMORY = re.compile(r"\d+(?:gb|gib|g)")           # "80gb", "16g": the memory size, not the model
_MODEL = re.compile(r"[a-z]{0,2}\d{1,5}[a-z]?")    # "4070", "a100", "l40s", "a10g", "gh200", "t4"
_GLUED = re.compile(r"(\d{4})(ti)?(super)?")       # "4070ti", "4070tisuper" as users type them
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "tf32": "float32"}


def _words(name: str) -> list[str]:
    low = re.sub(r"(rtx|gtx)(?=\d)", r"\1 ", name.lower().replace("max-q", "maxq"))  # "rtx4070"
    return re.sub(r"[^a-z0-9]+", " ", low).split()


def model_key(name: str) -> str | None:
    """'NVIDIA GeForce RTX 4070 Ti SUPER' -> '4070 ti super'; None for a name with an unknown word."""
    model: str | None = None
    variants: set[str] = set()
    for word in _words(name):
        if word in _NOISE or _MEMORY.fullmatch(word):
            continue
        if word in _VARIANTS:
            variants.add(_VARIANTS[word])
            continue
        glued = _GLUED.fullmatch(word)
        if glued:
            variants.update(v for v in glued.groups()[1:] if v)
            word = glued[1]
        if not _MODEL.fullmatch(word) or model is not None:
            return None                            # an unknown word, or two model numbers
        model = word
    if model is None:
        return None
    return " ".join([model, *(v for v in _ORDER if v in variants)])


def _lookup(key: str) -> dict[str, float] | None:
    """The row for a key; a form factor counts only for models whose figure depends on it."""
    if key in GPU_PEAKS:
        return GPU_PEAKS[key]
    words = key.split()
    forms = [w for w in words if w in _FORMS]
    if not forms:
        return None
    bare = " ".join(w for w in words if w not in _FORMS)
    if any(f"{bare} {form}" in GPU_PEAKS for form in _FORMS):
        return None                                # e.g. "v100 sxm3": this model's figure depends on it
    return GPU_PEAKS.get(bare)                     # e.g. "a100 sxm": the same figure for every form


def table_peak(name: str, dtype: str = "bfloat16") -> float | None:
    """Dense peak FLOP/s of the GPU called `name` in `dtype`, or None when the table has no figure.

    `name` is what torch.cuda.get_device_name() returns or a short user-typed one ('RTX 4070',
    '4070', 'a100', 'H100 SXM', '4070 laptop')."""
    key = model_key(name) if name else None
    row = _lookup(key) if key else None
    if row is None:
        return None
    return row.get(_DTYPES.get(dtype, dtype))
