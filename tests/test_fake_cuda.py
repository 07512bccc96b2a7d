"""One faked NVIDIA card (tests/fakecuda/sitecustomize.py patches torch.cuda in every process
started with it on PYTHONPATH): the real `gpttui train` and sampler reach the first call that
needs the card itself with the device resolved, the dtype chosen for the card and no Python
error of their own. The error they then meet is torch's: "Torch not compiled with CUDA enabled"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_kit import make_char_data

FAKECUDA = Path(__file__).resolve().parent / "fakecuda"
RTX_4070 = "NVIDIA GeForce RTX 4070|8.9|12|11"
T4 = "Tesla T4|7.5|15|14"
NO_CUDA_BUILD = "Torch not compiled with CUDA enabled"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fakecuda")
    make_char_data(root / "data", n_chars=20_000)
    (root / "c.py").write_text("n_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\nbatch_size = 4\n"
                               "max_iters = 4\neval_interval = 2\neval_iters = 2\ndata_dir = 'data'\n"
                               "out_dir = 'out'\ncompile = False\nthreads = 1\n")
    return root


def gpttui(cwd: Path, card: str | None, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    log = cwd / "fakecuda.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "FAKE_CUDA_LOG": str(log), "OMP_NUM_THREADS": "1"}
    if card is not None:
        env |= {"PYTHONPATH": str(FAKECUDA), "FAKE_CUDA": card}
    r = subprocess.run([str(Path(sys.executable).with_name("gpttui")), *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=180, stdin=subprocess.DEVNULL)
    return r, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("device", ["cuda", "auto", "cuda:0"])
def test_one_gpu_resolves_to_an_index_and_picks_native_bf16(project, device):
    r, calls = gpttui(project, RTX_4070, "train", "c.py", f"--device={device}", "--force")
    out = r.stdout + r.stderr
    assert "training on cuda:0 (NVIDIA GeForce RTX 4070) in bfloat16: native on compute capability 8.9" in out
    assert " set_device 0" in calls  # with an index: torch refuses 'cuda'
    assert r.returncode == 1 and f"error: AssertionError: {NO_CUDA_BUILD}" in r.stderr, out
    assert "ValueError" not in out and "Traceback" not in out


def test_a_card_without_native_bf16_trains_in_float16_and_says_why(project):
    r, _ = gpttui(project, T4, "train", "c.py", "--device=cuda", "--force")
    assert ("training on cuda:0 (Tesla T4) in float16: compute capability 7.5 has no native bfloat16; "
            "GradScaler on") in r.stdout
    r, _ = gpttui(project, T4, "train", "c.py", "--device=cuda", "--dtype=bfloat16", "--force")
    assert "in float16" in r.stdout
    assert "dtype bfloat16 asked for, but Tesla T4 (compute capability 7.5) only emulates it" in r.stdout + r.stderr


def test_an_index_past_the_last_gpu_is_one_line(project):
    r, _ = gpttui(project, RTX_4070, "train", "c.py", "--device=cuda:1", "--force")
    assert r.returncode == 2  # refused input (README: 2)
    assert "error: device: cuda:1 asked for, but torch sees 1 CUDA GPU(s) (cuda:0)" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


@pytest.fixture(scope="module")
def checkpoint(project) -> Path:
    r, _ = gpttui(project, None, "train", "c.py", "--device=cpu", "--force")
    assert r.returncode == 0, r.stderr
    return project / "out"


def test_sampler_beside_a_full_card_samples_on_the_cpu(project, checkpoint):
    card = "NVIDIA GeForce RTX 4070|8.9|12|0.9"  # what a 124M run at batch 12 leaves free
    r, calls = gpttui(project, card, "sample", "--out_dir=out", "--max_new_tokens=12", "--num_samples=1")
    assert r.returncode == 0, r.stderr
    assert "CPU: NVIDIA GeForce RTX 4070 has 0.9 GiB free" in r.stdout + r.stderr
    sampler_pids = {line.split()[0] for line in calls.splitlines() if line.endswith("patched")}
    asked = [line.split()[0] for line in calls.splitlines() if "mem_get_info" in line]
    assert len(asked) == 1 and len(sampler_pids) == 2  # asked once, by a short-lived child
    assert " set_device" not in calls


def test_sampler_with_room_on_the_card_samples_there_in_bf16(project, checkpoint):
    r, _ = gpttui(project, RTX_4070, "sample", "--out_dir=out", "--max_new_tokens=12", "--num_samples=1")
    out = r.stdout + r.stderr
    assert ("could not put the model on cuda:0 (bfloat16 on NVIDIA GeForce RTX 4070: needs 0.8 GiB, "
            f"11.0 GiB free): AssertionError: {NO_CUDA_BUILD}") in out
    assert r.returncode == 1
