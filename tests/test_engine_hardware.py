"""Device and peak FLOP/s: MFU is measured against the real device, never a fixed A100."""

from __future__ import annotations

import json

import torch

from gpttui.engine import hardware

torch.set_num_threads(1)


def test_cpu_trains_in_float32_and_says_why():
    dev = hardware.pick("cpu", "bfloat16")
    assert (dev.device, dev.dtype) == ("cpu", "float32") and "bfloat16 asked for" in dev.note
    assert hardware.pick("cpu", "auto").note == "" and hardware.pick("cpu", "float32").dtype == "float32"


def test_gpu_peaks_by_name_and_dtype():
    assert hardware.table_peak("NVIDIA GeForce RTX 4090", "bfloat16") == 165.2e12
    assert hardware.table_peak("NVIDIA A100-SXM4-40GB", "float32") == 156e12
    assert hardware.table_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert hardware.table_peak("Tesla T4", "float16") == 65e12
    assert hardware.table_peak("NVIDIA L4", "bfloat16") == 121e12
    assert hardware.table_peak("Mystery Accelerator 9000", "bfloat16") is None


def test_configured_peak_wins_and_cpu_peak_is_the_best_of_a_few_measurements(tmp_path, monkeypatch):
    dev = hardware.pick("cpu", "auto")
    assert hardware.peak_flops(dev, configured=5e11) == (5e11, "config peak_flops")
    monkeypatch.setattr(hardware, "CACHE", tmp_path / "peak.json")
    calls = []
    real = hardware.measure_matmul_peak
    monkeypatch.setattr(hardware, "measure_matmul_peak", lambda d: calls.append(d) or real(d, seconds=0.05))
    peaks = [hardware.peak_flops(dev, threads=1)[0] for _ in range(hardware.MEASUREMENTS + 2)]
    assert len(calls) == hardware.MEASUREMENTS  # then the cached best is trusted
    assert peaks == sorted(peaks) and peaks[-1] == peaks[-2]  # never lowered by a busy moment
    assert (tmp_path / "peak.json").is_file()
    assert 1e9 < peaks[-1] < 1e13 and hardware.peak_flops(dev, threads=1)[1].startswith("measured float32 matmul")



def test_a_hostile_peak_cache_is_measured_again_not_trusted(tmp_path, monkeypatch):
    """A cached peak of Infinity, 0 or -1 (a hand edit, another tool) would put every MFU at 0%
    or below: such entries count as never measured."""
    dev = hardware.pick("cpu", "auto")
    cache = tmp_path / "peak.json"
    monkeypatch.setattr(hardware, "CACHE", cache)
    monkeypatch.setattr(hardware, "measure_matmul_peak", lambda d: 2e11)
    key = f"{dev.name}|{dev.dtype}|threads=1|torch={torch.__version__}"
    for bad in ("Infinity", "0", "-1", "NaN"):
        cache.write_text(f'{{"{key}": [{bad}, 99]}}')
        assert hardware.peak_flops(dev, threads=1)[0] == 2e11
        assert json.loads(cache.read_text())[key] == [2e11, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["peak.json"]  # no temporary left beside it


def test_a_peak_measured_low_for_more_threads_takes_the_peak_of_fewer(tmp_path, monkeypatch):
    """2 threads measured at 57 GFLOP/s under load, 1 thread at 84: MFU on 2 threads is judged
    against 84, never against a peak lower than what fewer threads reach."""
    dev = hardware.pick("cpu", "auto")
    cache = tmp_path / "peak.json"
    monkeypatch.setattr(hardware, "CACHE", cache)
    monkeypatch.setattr(hardware, "measure_matmul_peak", lambda d: 57e9)
    key1 = f"{dev.name}|{dev.dtype}|threads=1|torch={torch.__version__}"
    cache.write_text(json.dumps({key1: [84e9, hardware.MEASUREMENTS]}))
    assert hardware.peak_flops(dev, threads=2)[0] == 84e9
    assert hardware.peak_flops(dev, threads=1)[0] == 84e9

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(tuner: hardware.ThreadTuner, clock: FakeClock, ms_per_threads: dict[int, float], n: int) -> list:
    """Run n iterations whose time depends on the thread count in force; return the changes."""
    threads, changes = tuner.current, []
    for _ in range(n):
        dt = ms_per_threads[threads] / 1000
        clock.now += dt
        change = tuner.observe(dt)
        if change:
            threads = change[0]
            changes.append(change)
    return changes


def test_tuner_drops_a_thread_when_the_cores_are_contended():
    clock = FakeClock()
    tuner = hardware.ThreadTuner(2, clock=clock)
    changes = feed(tuner, clock, {2: 800.0, 1: 100.0}, 30)
    assert changes[0] == (1, "") and "1 CPU thread(s) run faster than 2" in changes[1][1]
    assert tuner.current == 1


def test_tuner_keeps_every_core_on_an_idle_machine_and_probes_rarely():
    clock = FakeClock()
    tuner = hardware.ThreadTuner(2, clock=clock)
    changes = feed(tuner, clock, {2: 43.0, 1: 73.0}, 5000)  # 3.6 minutes of training
    assert tuner.current == 2 and all(note == "" for _, note in changes)
    probes = [c for c in changes if c[0] == 1]
    assert 2 <= len(probes) <= 5  # backing off: 0 s, 20 s, 60 s, 140 s ...
    # a probe of the slow setting is abandoned after 2 measured iterations
    assert sum(1 for c in changes) == 2 * len(probes)


def test_tuner_returns_to_every_core_when_the_load_goes_away():
    clock = FakeClock()
    tuner = hardware.ThreadTuner(2, clock=clock)
    feed(tuner, clock, {2: 800.0, 1: 100.0}, 30)
    assert tuner.current == 1
    changes = feed(tuner, clock, {2: 43.0, 1: 73.0}, 2000)
    assert tuner.current == 2 and any("2 CPU thread(s) run faster than 1" in note for _, note in changes)


def test_bf16_only_where_the_card_runs_it_natively():
    assert hardware.cuda_dtype("auto", (8, 9), "RTX 4070")[0] == "bfloat16"
    assert hardware.cuda_dtype("auto", (8, 0), "A100")[0] == "bfloat16"
    dtype, reason, note = hardware.cuda_dtype("auto", (7, 5), "Tesla T4")
    assert dtype == "float16" and "GradScaler" in reason and note == ""
    dtype, _, note = hardware.cuda_dtype("bfloat16", (7, 0), "Tesla V100")
    assert dtype == "float16" and "only emulates it" in note
    assert hardware.cuda_dtype("float32", (9, 0), "H100")[:2] == ("float32", "as configured; TF32 matmuls")


def test_sampler_takes_the_gpu_only_with_a_margin_left_for_training():
    card = hardware.GpuMemory(0, "NVIDIA GeForce RTX 4070", (8, 9), free=0, total=12 * hardware.GIB)
    gpt2 = hardware.inference_bytes(124_439_808, 12, 768, 1024, 50304)
    assert 1.1 * hardware.GIB < gpt2 < 1.4 * hardware.GIB  # bf16 weights, cache, prefill, context
    card.free = int(2.0 * hardware.GIB)  # a 124M run at batch 12 leaves about this much
    assert hardware.sampler_device(gpt2, card)[0] == "cpu"
    card.free = int(8.0 * hardware.GIB)
    assert hardware.sampler_device(gpt2, card)[:2] == ("cuda:0", "bfloat16")
    t4 = hardware.GpuMemory(1, "Tesla T4", (7, 5), free=14 * hardware.GIB, total=15 * hardware.GIB)
    assert hardware.sampler_device(gpt2, t4)[:2] == ("cuda:1", "float16")
    assert hardware.sampler_device(gpt2, None) == ("cpu", "float32", "no CUDA GPU")
