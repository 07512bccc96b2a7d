"""`gpttui export RUN --format tensorboard -o DIR`: event files TensorBoard's own reader takes, a
scalar for every step and eval field at its iteration, written without torch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from engine_kit import EngineProc, prepare_run, read_events

from gpttui import cli

pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG = FIXTURES / "train_log_fineweb_124m.txt"


def read(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})   # 0: keep every point
    acc.Reload()
    return acc


def test_a_nanogpt_log_becomes_scalars_tensorboard_reads(tmp_path, capsys):
    assert cli.main(["export", str(LOG), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    assert "scalars" in capsys.readouterr().out
    acc = read(tmp_path / "tb")
    assert set(acc.Tags()["scalars"]) == {"eval/train_loss", "eval/val_loss", "step/loss", "step/dt_ms",
                                          "step/lr", "step/mfu", "step/tokens", "step/tokens_per_s"}
    val = {e.step: e.value for e in acc.Scalars("eval/val_loss")}
    assert len(val) == 21 and val[500] == pytest.approx(5.5055) and val[0] == pytest.approx(10.9913)
    loss = {e.step: e.value for e in acc.Scalars("step/loss")}
    assert loss[7800] == pytest.approx(3.2876)
    assert {e.step: e.value for e in acc.Scalars("step/tokens")}[200] == 201 * 524288
    # the log has no lr: it comes from the echoed config's schedule, nanoGPT's get_lr (warm-up 500, cosine)
    lr = {e.step: e.value for e in acc.Scalars("step/lr")}
    assert lr[200] == pytest.approx(3e-4 * 201 / 501, rel=1e-6)
    cosine = 0.5 * (1 + math.cos(math.pi * (7800 - 500) / (12000 - 500)))
    assert lr[7800] == pytest.approx(3e-5 + cosine * (3e-4 - 3e-5), rel=1e-6)


def test_an_engine_run_has_every_step_field(tmp_path, char_data):
    run = prepare_run(char_data, tmp_path / "run", max_iters=12, eval_interval=6, eval_iters=2)
    assert EngineProc(run).finish(timeout=120) == 0
    steps = read_events(run, "step")
    assert cli.main(["export", str(run), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    acc = read(tmp_path / "tb")
    assert set(acc.Tags()["scalars"]) == {f"step/{f}" for f in ("loss", "lr", "dt_ms", "tokens_per_s", "mfu",
                                                                "grad_norm", "tokens")} | {"eval/train_loss", "eval/val_loss"}
    lr = acc.Scalars("step/lr")
    assert [e.step for e in lr] == [s["iter"] for s in steps] == list(range(12))
    assert [e.value for e in lr] == pytest.approx([s["lr"] for s in steps], rel=1e-6)
    assert [e.wall_time for e in lr] == pytest.approx([s["t"] for s in steps])
    assert [e.step for e in acc.Scalars("eval/val_loss")] == [0, 6, 12]


def test_several_runs_go_to_one_subdirectory_each(tmp_path):
    logs = [FIXTURES / "train_log_fineweb_124m.txt", FIXTURES / "train_log_fineweb_40m.txt"]
    assert cli.main(["export", *map(str, logs), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == sorted(p.name for p in logs)
    assert read(tmp_path / "tb" / logs[1].name).Scalars("eval/val_loss")[-1].step == 20000


def test_a_directory_that_already_holds_events_is_refused(tmp_path, capsys):
    assert cli.main(["export", str(LOG), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 0
    before = sorted((tmp_path / "tb").iterdir())
    assert cli.main(["export", str(LOG), "--format", "tensorboard", "-o", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds TensorBoard event files" in err
    assert sorted((tmp_path / "tb").iterdir()) == before       # TensorBoard would draw every point twice


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
