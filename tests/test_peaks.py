"""The GPU peak table: device names as torch.cuda.get_device_name() reports them, and as users
type them for `gpttui doctor --device`, matched exactly (never by substring)."""

import pytest

from gpttui.analysis.peaks import GPU_PEAKS, model_key, table_peak

T = 1e12

# (name as torch reports it, bfloat16, float16, float32) in TFLOP/s; None = no figure
REPORTED = [
    ("NVIDIA GeForce RTX 3060", 25.5, 25.5, 12.75),
    ("NVIDIA GeForce RTX 3060 Ti", 32.4, 32.4, 16.2),
    ("NVIDIA GeForce RTX 3070 Ti", 43.5, 43.5, 21.7),
    ("NVIDIA GeForce RTX 3080 Ti", 68.2, 68.2, 34.1),
    ("NVIDIA GeForce RTX 3090", 71.0, 71.0, 35.6),
    ("NVIDIA GeForce RTX 3090 Ti", 80.0, 80.0, 40.0),
    ("NVIDIA GeForce RTX 4060", 30.2, 30.2, 15.1),
    ("NVIDIA GeForce RTX 4060 Ti", 44.1, 44.1, 22.1),
    ("NVIDIA GeForce RTX 4070", 58.3, 58.3, 29.1),
    ("NVIDIA GeForce RTX 4070 SUPER", 71.0, 71.0, 35.5),
    ("NVIDIA GeForce RTX 4070 Ti", 80.2, 80.2, 40.1),
    ("NVIDIA GeForce RTX 4070 Ti SUPER", 88.2, 88.2, 44.1),
    ("NVIDIA GeForce RTX 4080", 97.5, 97.5, 48.7),
    ("NVIDIA GeForce RTX 4080 SUPER", 104.4, 104.4, 52.2),
    ("NVIDIA GeForce RTX 4090", 165.2, 165.2, 82.6),
    ("NVIDIA GeForce RTX 5060 Ti", 47.4, 47.4, 23.7),
    ("NVIDIA GeForce RTX 5070", 61.7, 61.7, 30.9),
    ("NVIDIA GeForce RTX 5070 Ti", 87.9, 87.9, 43.9),
    ("NVIDIA GeForce RTX 5080", 112.6, 112.6, 56.3),
    ("NVIDIA GeForce RTX 5090", 209.5, 209.5, 104.8),
    ("NVIDIA GeForce RTX 2080 Ti", None, 53.8, 13.4),          # Turing: no bf16, no TF32
    # laptop parts: their own (top-TGP) figures, far below the desktop card of the same number
    ("NVIDIA GeForce RTX 3060 Laptop GPU", 26.2, 26.2, 13.1),
    ("NVIDIA GeForce RTX 3080 Ti Laptop GPU", 47.2, 47.2, 23.6),
    ("NVIDIA GeForce RTX 4060 Laptop GPU", 29.1, 29.1, 14.6),
    ("NVIDIA GeForce RTX 4070 Laptop GPU", 40.1, 40.1, 20.1),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", 85.75, 85.75, 42.9),
    ("NVIDIA GeForce RTX 5070 Ti Laptop GPU", 62.0, 62.0, 31.0),
    ("NVIDIA GeForce RTX 5090 Laptop GPU", 114.0, 114.0, 57.0),
    # workstation
    ("NVIDIA RTX A2000 12GB", 31.95, 31.95, 16.0),
    ("NVIDIA RTX A4000", 76.7, 76.7, 38.35),
    ("NVIDIA RTX A5000", 111.1, 111.1, 55.55),
    ("NVIDIA RTX A6000", 154.85, 154.85, 77.4),
    ("NVIDIA RTX 6000 Ada Generation", 364.2, 364.2, 182.1),
    # data centre
    ("Tesla T4", None, 65.0, 8.1),
    ("Tesla V100-SXM2-16GB", None, 125.0, 15.7),
    ("Tesla V100-SXM2-32GB", None, 125.0, 15.7),
    ("Tesla V100-PCIE-16GB", None, 112.0, 14.0),
    ("NVIDIA A10", 125.0, 125.0, 62.5),
    ("NVIDIA A10G", 70.0, 70.0, 35.0),
    ("NVIDIA A30", 165.0, 165.0, 82.0),
    ("NVIDIA A40", 149.7, 149.7, 74.8),
    ("NVIDIA A100-SXM4-40GB", 312.0, 312.0, 156.0),
    ("NVIDIA A100-SXM4-80GB", 312.0, 312.0, 156.0),
    ("NVIDIA A100-PCIE-40GB", 312.0, 312.0, 156.0),
    ("NVIDIA A100 80GB PCIe", 312.0, 312.0, 156.0),
    ("NVIDIA L4", 121.0, 121.0, 60.0),
    ("NVIDIA L40", 181.05, 181.05, 90.5),
    ("NVIDIA L40S", 362.05, 362.05, 183.0),
    ("NVIDIA H100 80GB HBM3", 989.4, 989.4, 494.7),           # the SXM5 part
    ("NVIDIA H100 PCIe", 756.0, 756.0, 378.0),
    ("NVIDIA H100 NVL", 835.5, 835.5, 417.5),
    ("NVIDIA H200", 989.4, 989.4, 494.7),
    ("NVIDIA H200 NVL", 835.5, 835.5, 417.5),
    ("NVIDIA GH200 480GB", 989.4, 989.4, 494.7),
]


@pytest.mark.parametrize("name,bf16,fp16,fp32", REPORTED)
def test_reported_names_give_their_dense_figures(name, bf16, fp16, fp32):
    for dtype, want in (("bfloat16", bf16), ("float16", fp16), ("float32", fp32)):
        got = table_peak(name, dtype)
        assert got == (None if want is None else pytest.approx(want * T)), (name, dtype)


@pytest.mark.parametrize("name", [
    "NVIDIA RTX A1000 6GB Laptop GPU",     # not an A100
    "NVIDIA RTX A1000",                    # not an A100 either (no figure of its own here)
    "NVIDIA T400 4GB",                     # not a T4
    "NVIDIA RTX A2000 8GB Laptop GPU",     # a laptop part has no desktop figure
    "NVIDIA GeForce RTX 4090 D",           # a cut-down 4090: an unknown suffix is no match
    "NVIDIA A100-SXM4-40GB MIG 1g.5gb",    # a MIG slice has a fraction of the card
    "NVIDIA GeForce RTX 2080 with Max-Q Design",
    "Quadro RTX 6000",                     # Turing, not the RTX 6000 Ada
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
    "Tesla V100-SXM3-32GB",                # a form factor the V100 rows don't cover
    "NVIDIA GeForce GTX 1080 Ti",
    "Tesla P100-PCIE-16GB",
    "NVIDIA A800 80GB PCIe",
    "Mystery Accelerator 9000",
    "Intel(R) Xeon(R) CPU @ 2.20GHz",
    "",
])
def test_lookalikes_and_unknown_names_have_no_figure(name):
    assert table_peak(name, "bfloat16") is None
    assert table_peak(name, "float16") is None


def test_a1000_and_t400_are_not_the_a100_and_t4():
    assert model_key("NVIDIA RTX A1000 6GB Laptop GPU") == "a1000 laptop"
    assert model_key("NVIDIA T400 4GB") == "t400"
    assert table_peak("NVIDIA A100-SXM4-80GB") == 312 * T and table_peak("Tesla T4", "float16") == 65 * T


def test_laptop_parts_are_below_the_desktop_card():
    # (not the 3060: its laptop part has more SMs than the desktop card, 30 against 28)
    assert model_key("NVIDIA GeForce RTX 3060 Laptop GPU") == "3060 laptop"
    for number in ("3070", "3080", "4060", "4070", "4080", "4090", "5070", "5080", "5090"):
        desktop = table_peak(f"NVIDIA GeForce RTX {number}")
        laptop = table_peak(f"NVIDIA GeForce RTX {number} Laptop GPU")
        assert laptop is not None and desktop is not None and laptop < desktop, number


@pytest.mark.parametrize("typed,reported", [
    ("RTX 4070", "NVIDIA GeForce RTX 4070"),
    ("4070", "NVIDIA GeForce RTX 4070"),
    ("4070 laptop", "NVIDIA GeForce RTX 4070 Laptop GPU"),
    ("4070 Ti Super", "NVIDIA GeForce RTX 4070 Ti SUPER"),
    ("rtx4070ti", "NVIDIA GeForce RTX 4070 Ti"),
    ("a100", "NVIDIA A100-SXM4-80GB"),
    ("A100 PCIe", "NVIDIA A100 80GB PCIe"),
    ("H100 SXM", "NVIDIA H100 80GB HBM3"),
    ("h100", "NVIDIA H100 80GB HBM3"),
    ("H100 PCIe", "NVIDIA H100 PCIe"),
    ("V100", "Tesla V100-SXM2-16GB"),
    ("t4", "Tesla T4"),
    ("L40S", "NVIDIA L40S"),
    ("RTX 6000 Ada", "NVIDIA RTX 6000 Ada Generation"),
])
def test_user_typed_names_match_the_reported_ones(typed, reported):
    assert model_key(typed) == model_key(reported) or table_peak(typed) == table_peak(reported)
    assert table_peak(typed, "float16") == table_peak(reported, "float16") is not None


def test_model_key_normalises_brand_memory_and_form_words():
    assert model_key("NVIDIA GeForce RTX 4070 Ti SUPER") == "4070 ti super"
    assert model_key("NVIDIA A100-SXM4-80GB") == "a100 sxm"
    assert model_key("Tesla V100-PCIE-32GB") == "v100 pcie"
    assert model_key("NVIDIA H100 80GB HBM3") == "h100"
    assert model_key("NVIDIA GeForce RTX 3080 Ti Laptop GPU") == "3080 ti laptop"
    assert model_key("NVIDIA GeForce RTX 4090 D") is None


def test_dtype_aliases_and_unknown_dtypes():
    assert table_peak("RTX 4090", "bf16") == table_peak("RTX 4090", "bfloat16")
    assert table_peak("RTX 4090", "tf32") == table_peak("RTX 4090", "float32") == pytest.approx(82.6 * T)
    assert table_peak("RTX 4090", "float64") is None


def test_every_row_is_dense_and_consistent():
    """bf16 == fp16 where both exist, float32 below them; no sparse headline figure slipped in."""
    for key, row in GPU_PEAKS.items():
        assert set(row) <= {"bfloat16", "float16", "float32"} and "float16" in row, key
        if "bfloat16" in row:
            assert row["bfloat16"] == row["float16"], key
        assert row["float32"] < row["float16"], key
        assert row["float16"] <= 1000 * T, key        # H100/H200 SXM dense bf16 is the top
        assert model_key(key) == key, key              # every key is one model_key produces
