"""`gpttui export RUN --format tensorboard -o DIR`: event files TensorBoard's own reader takes, a
scalar for every step and eval field at its iteration, written without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpttui import cli

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG = FIXTURES / "train_log_fineweb_124m.txt"
RUN = Path(__file__).resolve().parent / "fixtures" / "runs" / "char_2x64_1500.jsonl"


def read(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})   # 0: keep every point
    acc.Reload()
    return acc


def test_a_nanogpt_log_becomes_scalars_tensorboard_reads(tmp_path, capsys):
    assert cli.main(["export", str(LOG), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    assert "scalars" in capsys.readouterr().out
    acc = read(tmp_path / "tb")
    assert set(acc.Tags()["scalars"]) == {"eval/train_loss", "eval/val_loss", "step/loss", "step/dt_ms",
                                          "step/mfu", "step/tokens", "step/tokens_per_s"}
    val = {e.step: e.value for e in acc.Scalars("eval/val_loss")}
    assert len(val) == 21 and val[500] == pytest.approx(5.5055) and val[0] == pytest.approx(10.9913)
    loss = {e.step: e.value for e in acc.Scalars("step/loss")}
    assert loss[7800] == pytest.approx(3.2876)
    assert {e.step: e.value for e in acc.Scalars("step/tokens")}[200] == 201 * 524288


def test_an_engine_run_has_every_step_field(tmp_path):
    events = [json.loads(x) for x in RUN.read_text().splitlines() if x.strip()]
    steps = [e for e in events if e.get("type") == "step"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(RUN.read_text())
    assert cli.main(["export", str(run), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    acc = read(tmp_path / "tb")
    fields = [f for f in ("loss", "lr", "dt_ms", "tokens_per_s", "mfu", "grad_norm", "tokens") if f in steps[0]]
    assert {f"step/{f}" for f in fields} <= set(acc.Tags()["scalars"]) and len(fields) >= 6
    lr = acc.Scalars("step/lr")
    assert len(lr) == len({s["iter"] for s in steps})
    last = steps[-1]
    assert lr[-1].step == last["iter"] and lr[-1].value == pytest.approx(last["lr"], rel=1e-6)
    assert lr[-1].wall_time == pytest.approx(last["t"])


def test_several_runs_go_to_one_subdirectory_each(tmp_path):
    logs = [FIXTURES / "train_log_fineweb_124m.txt", FIXTURES / "train_log_fineweb_40m.txt"]
    assert cli.main(["export", *map(str, logs), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == sorted(p.name for p in logs)
    assert read(tmp_path / "tb" / logs[1].name).Scalars("eval/val_loss")[-1].step == 20000


def test_tensorboard_export_imports_no_torch(tmp_path):
    code = ("import sys; from gpttui import cli; rc = cli.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "export", str(LOG), "--format", "tensorboard",
                           "-o", str(tmp_path / "tb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1


def test_a_file_where_the_directory_should_be_is_refused(tmp_path, capsys):
    (tmp_path / "tb").write_text("x")
    assert cli.main(["export", str(LOG), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 2
    assert "directory" in capsys.readouterr().err
