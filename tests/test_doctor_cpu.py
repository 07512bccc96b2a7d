"""The doctor's MFU verdict for runs made on a CPU: nanoGPT's MFU is against an A100's peak and no
GPU peak applies, so it neither advises --device nor puts the run against a GPU's peak."""

from __future__ import annotations

import json
from pathlib import Path

from gpttui.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CPU_LOG = str(FIXTURES / "nanogpt" / "train_log_shakespeare_char_cpu_cos3000.txt")   # Overriding: device = cpu
GPU_LOG = str(FIXTURES / "nanogpt" / "train_log_fineweb_124m.txt")
# `gpttui train --device=cpu` of a 2x64 char model for 60 iters: its hello has the CPU's measured peak
CPU_RUN = str(FIXTURES / "runs" / "cpu_2x64_60.jsonl")


def _mfu_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("MFU"))
    return lines[start:]


def _doctor(capsys, *args: str) -> str:
    assert main(["doctor", *args]) == 0
    return capsys.readouterr().out


def test_a_nanogpt_cpu_log_is_told_its_mfu_means_little_not_to_pass_a_gpu(capsys):
    for args in ([], ["--device", "cpu"], ["--device", "CPU"]):
        mfu = "\n".join(_mfu_lines(_doctor(capsys, CPU_LOG, *args)))
        assert ("the run was on a CPU, where no GPU peak applies: nanoGPT's MFU is against an A100's peak "
                "(312 TFLOP/s), so it means little here") in mfu
        assert "--device" not in mfu and "RTX" not in mfu
        assert "\n              MFU " not in mfu      # no MFU against a peak it doesn't have
        assert "(0.109 TFLOP/s achieved; evals excluded)" in mfu


def test_a_nanogpt_cpu_log_in_json_keeps_its_keys_and_says_cpu(capsys):
    for args in ([], ["--device", "cpu"]):
        report = json.loads(_doctor(capsys, CPU_LOG, "--json", *args))
        m = report["mfu"]
        assert m["on_cpu"] is True and m["device"] == "cpu"
        assert m["mfu"] is None and m["device_peak_flops"] is None
        assert {"reported_mean", "reported_peak_flops", "flops_per_iter", "steady_vs_a100", "world_size"} <= set(m)
        finding = next(f for f in report["findings"] if f["key"] == "mfu")
        assert finding["verdict"].startswith("the run was on a CPU") and finding["level"] == "note"


def test_a_gpu_log_still_gets_the_device_advice(capsys):
    mfu = "\n".join(_mfu_lines(_doctor(capsys, GPU_LOG)))
    assert "pass --device (e.g. --device 'RTX 4070')" in mfu
    assert json.loads(_doctor(capsys, GPU_LOG, "--json"))["mfu"]["on_cpu"] is False


def test_device_cpu_on_a_gpttui_cpu_run_keeps_the_peak_the_engine_measured(capsys):
    plain = _mfu_lines(_doctor(capsys, CPU_RUN))
    assert _mfu_lines(_doctor(capsys, CPU_RUN, "--device", "cpu")) == plain
    assert plain[1].startswith("              MFU ") and "of Intel(R) Xeon(R) Processor's 0.347 TFLOP/s (float32)" in plain[1]


def test_a_run_with_a_peak_but_no_step_times_is_told_so_not_that_it_lacks_a_peak(capsys):
    """char_2x64_1500.jsonl keeps the hello (the CPU's measured peak) and the evals, no steps."""
    mfu = _mfu_lines(_doctor(capsys, str(FIXTURES / "runs" / "char_2x64_1500.jsonl")))
    assert mfu[-1].endswith("[note] no MFU figures or step times in this source")
