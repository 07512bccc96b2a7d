"""The doctor on real runs of every short length (1, 2, 5, 20, 25 iterations), with evals every
other iteration and with only the engine's own first and last eval: `gpttui doctor` (text and
JSON), the report judged at every iteration of the run, the run's engine.log read as a nanoGPT
log, and the dashboard's doctor panel. None may crash; each says what it can't know."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import ScreenHost, flat, pilot_test, wait_for

from gpttui import cli
from gpttui.analysis import doctor
from gpttui.run.history import load_run
from gpttui.screens.doctor import DoctorScreen

LENGTHS = (1, 2, 5, 20, 25)
EVERY = {"evals": 2, "no-evals": 1_000_000}   # 1_000_000: only the engine's eval at the start and the end
CONFIG = """\
n_layer = 1
n_head = 1
n_embd = 16
block_size = 16
batch_size = 4
gradient_accumulation_steps = 1
eval_iters = 2
log_interval = 1
device = 'cpu'
dtype = 'float32'
compile = False
threads = 1
warmup_iters = 1
"""


@pytest.fixture(scope="module")
def runs(char_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, str], Path]:
    root = tmp_path_factory.mktemp("short_runs")
    cfg = root / "tiny.py"
    cfg.write_text(CONFIG + f"data_dir = {str(char_data)!r}\n")
    out = {}
    for n in LENGTHS:
        for kind, every in EVERY.items():
            run_dir = root / f"run_{n}_{kind}"
            done = subprocess.run(
                [sys.executable, "-m", "gpttui", "train", str(cfg), f"--out_dir={run_dir}", f"--max_iters={n}",
                 f"--lr_decay_iters={n}", f"--eval_interval={every}"],
                capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            out[(n, kind)] = run_dir
    return out


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("kind", EVERY)
def test_doctor_command_on_a_short_run(runs, n, kind, capsys):
    run_dir = runs[(n, kind)]
    assert cli.main(["doctor", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"iter {n:,} of {n:,}" in text
    assert cli.main(["doctor", str(run_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["last_iter"] == n and report["max_iters"] == n


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("kind", EVERY)
def test_doctor_at_every_iteration_and_on_the_engine_log(runs, n, kind):
    run_dir = runs[(n, kind)]
    history = load_run(run_dir)
    for it in range(n + 1):
        r = doctor.diagnose(history.until(it))
        text = doctor.render(r)
        assert r.last_iter in (None, *range(it + 1))
        trend = next(f for f in r.findings if f.key == "trend")
        assert trend.verdict    # said, whatever the number of evals
        assert "iter" in text.splitlines()[0] or r.last_iter is None
    r = doctor.diagnose(load_run(run_dir / "engine.log"))
    assert r.kind == "nanogpt-log" and r.last_iter == n
    doctor.render(r)


@pilot_test
async def test_doctor_panel_on_a_one_iteration_run(runs):
    host = ScreenHost(DoctorScreen(load_run(runs[(1, "evals")]), "run_1"))
    async with host.run_test(size=(120, 50)) as pilot:
        screen = host.pushed
        await wait_for(pilot, lambda: screen.report is not None and "loss trend" in flat(host), 30, "the doctor's report")
        shown = flat(host)
        assert "the doctor failed" not in shown
        assert "loss trend" in shown and "time" in shown
