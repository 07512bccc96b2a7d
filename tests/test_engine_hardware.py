"""Device and peak FLOP/s: MFU is measured against the real device, never a fixed A100."""

from __future__ import annotations

import torch

from gpttui.engine import hardware as H

torch.set_num_threads(1)


def test_cpu_trains_in_float32_and_says_why():
    dev = H.pick("cpu", "bfloat16")
    assert (dev.device, dev.dtype) == ("cpu", "float32") and "bfloat16 asked for" in dev.note
    assert H.pick("cpu", "auto").note == "" and H.pick("cpu", "float32").dtype == "float32"


def test_gpu_peaks_by_name_and_dtype():
    assert H.table_peak("NVIDIA GeForce RTX 4090", "bfloat16") == 165.2e12
    assert H.table_peak("NVIDIA A100-SXM4-40GB", "float32") == 156e12
    assert H.table_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert H.table_peak("Tesla T4", "float16") == 65e12
    assert H.table_peak("NVIDIA L4", "bfloat16") == 121e12
    assert H.table_peak("Mystery Accelerator 9000", "bfloat16") is None


def test_configured_peak_wins_and_cpu_peak_is_measured_once(tmp_path, monkeypatch):
    dev = H.pick("cpu", "auto")
    assert H.peak_flops(dev, configured=5e11) == (5e11, "config peak_flops")
    monkeypatch.setattr(H, "CACHE", tmp_path / "peak.json")
    calls = []
    real = H.measure_matmul_peak
    monkeypatch.setattr(H, "measure_matmul_peak", lambda d: calls.append(d) or real(d, seconds=0.05))
    first, source = H.peak_flops(dev, threads=1)
    again, _ = H.peak_flops(dev, threads=1)
    assert len(calls) == 1 and first == again and (tmp_path / "peak.json").is_file()
    assert 1e9 < first < 1e13 and source.startswith("measured float32 matmul")
