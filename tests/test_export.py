"""`gpttui export`: one row per iter/step line, csv/parquet/jsonl with tokens, mfu's peak and checkpoint
flags filled in, the plotext chart, atomic writes."""

import csv
import json
import math
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gpttui import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOGS = [FIXTURES / "train_log_fineweb_124m.txt", FIXTURES / "train_log_fineweb_40m.txt"]


def record_lines(path: Path) -> tuple[int, int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return (sum(1 for x in lines if re.search(r"iter \d+: loss", x)),
            sum(1 for x in lines if re.match(r"step \d+: train loss", x)))


@pytest.mark.parametrize("log", LOGS)
def test_csv_has_exactly_one_row_per_iter_and_step_line(log, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert cli.main(["export", str(log), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    iters, steps = record_lines(log)
    assert len(rows) == iters + steps
    assert sum(r["kind"] == "step" for r in rows) == iters and sum(r["kind"] == "eval" for r in rows) == steps
    # nanoGPT's order: the eval ("step N") before the training line ("iter N") of the same iteration
    assert [r["kind"] for r in rows[:2]] == ["eval", "step"] and rows[0]["iter"] == rows[1]["iter"] == "0"
    assert [int(r["iter"]) for r in rows] == sorted(int(r["iter"]) for r in rows)
    first_eval = rows[0]
    assert float(first_eval["val_loss"]) > 10 and first_eval["loss"] == ""
    assert f"{iters + steps} rows" in capsys.readouterr().out


def test_parquet_and_jsonl_hold_the_same_rows(tmp_path):
    log = LOGS[0]
    assert cli.main(["export", str(log), "-o", str(tmp_path / "r.parquet")]) == 0   # format from the suffix
    assert cli.main(["export", str(log), "-o", str(tmp_path / "r.jsonl")]) == 0
    table = pq.read_table(tmp_path / "r.parquet")
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert table.num_rows == len(lines) == sum(record_lines(log))
    assert table.column("kind").to_pylist() == [json.loads(x)["kind"] for x in lines]
    step = next(json.loads(x) for x in lines if json.loads(x)["iter"] == 7800 and json.loads(x)["kind"] == "step")
    assert step["loss"] == 3.2876 and step["dt_ms"] == 9349.59 and step["mfu"] == 0.1363
    ev = next(json.loads(x) for x in lines if json.loads(x)["kind"] == "eval" and json.loads(x)["iter"] == 500)
    assert ev["val_loss"] == 5.5055 and ev["checkpoint"] == "out-fineweb" and ev["checkpointed"] is True


def test_chart_saved_as_text_and_html(tmp_path):
    log = LOGS[1]
    assert cli.main(["export", str(log), "--chart", str(tmp_path / "loss.txt")]) == 0
    assert cli.main(["export", str(log), "--chart", str(tmp_path / "loss.html")]) == 0
    text = (tmp_path / "loss.txt").read_text()
    assert "train_log_fineweb_40m.txt: loss" in text and "train" in text and "val" in text
    assert "2.0e4" in text                                   # the x axis reaches the last iteration
    assert "\x1b[" not in text                               # plain text, no colour codes
    html = (tmp_path / "loss.html").read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and "<pre>" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.html", "loss.txt"]   # no temporaries left


def test_bad_requests_fail_with_one_line_and_write_nothing(tmp_path, capsys):
    log = str(LOGS[0])
    assert cli.main(["export", log, "-o", str(tmp_path / "rows.xlsx")]) == 2
    assert "--format" in capsys.readouterr().err
    assert cli.main(["export", log, "-o", str(tmp_path / "no" / "such" / "dir.csv")]) == 2
    assert "directory does not exist" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.txt" in err
    assert cli.main(["export", log]) == 2
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_whole(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("old content that is longer than nothing\n" * 1000)
    assert cli.main(["export", str(LOGS[0]), "-o", str(out)]) == 0
    assert out.read_text().startswith('"kind","iter"') and "old content" not in out.read_text()


def test_tokens_mfu_peak_and_checkpoint_flags_are_filled_from_the_log(tmp_path, capsys):
    log = LOGS[0]                      # 124m: 524,288 tokens per iteration, 20 "saving checkpoint" lines
    out = tmp_path / "rows.csv"
    assert cli.main(["export", str(log), "-o", str(out)]) == 0
    assert "mfu: a fraction of 312 TFLOP/s" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    step = next(r for r in rows if r["kind"] == "step" and r["iter"] == "200")
    assert int(step["tokens"]) == 201 * 524288                       # seen after iteration 200
    assert float(step["tokens_per_s"]) == pytest.approx(524288 / 9.33704)   # "time 9337.04ms"
    assert float(step["mfu"]) == 0.1538 and float(step["mfu_peak_flops"]) == 312e12
    # nanoGPT prints no lr: its get_lr of the echoed config (3e-4, warm-up 500, cosine to 3e-5 at 12000)
    assert float(step["lr"]) == pytest.approx(3e-4 * 201 / 501)
    late = next(r for r in rows if r["kind"] == "step" and r["iter"] == "6000")
    assert float(late["lr"]) == pytest.approx(3e-5 + 0.5 * (1 + math.cos(math.pi * 5500 / 11500)) * 2.7e-4)
    ev = next(r for r in rows if r["kind"] == "eval" and r["iter"] == "500")
    assert int(ev["tokens"]) == 500 * 524288
    flagged = [r for r in rows if r["checkpointed"] == "true"]
    text = log.read_text(encoding="utf-8")
    assert len(flagged) == text.count("saving checkpoint to ") == 20
    assert all(r["kind"] == "eval" and r["checkpoint"] == "out-fineweb" for r in flagged)
    assert flagged[0]["iter"] == "500"                               # nothing is saved at iter 0
    assert all(r["checkpointed"] == "false" and r["checkpoint"] == "" for r in rows if r not in flagged)


def test_parquet_carries_the_runs_config_and_what_mfu_is_against(tmp_path):
    out = tmp_path / "rows.parquet"
    assert cli.main(["export", str(LOGS[0]), "-o", str(out)]) == 0
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    config = json.loads(meta["gpttui.config"])
    assert (config["n_layer"], config["n_embd"], config["max_iters"]) == (12, 768, 12000)   # the echoed train_fineweb.py
    assert float(meta["gpttui.peak_flops"]) == 312e12 and "fraction of 312 TFLOP/s" in meta["gpttui.mfu"]
    assert meta["gpttui.tokens_per_iter"] == "524288"
    table = pq.read_table(out)
    assert table.column("checkpointed").type == "bool" and sum(table.column("checkpointed").to_pylist()) == 20


def test_an_engine_runs_checkpoint_without_an_eval_flags_the_last_step_before_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    events = [{"v": 1, "type": "hello", "iter": 0, "start_iter": 0, "tokens_per_iter": 64, "peak_flops": 1e12,
               "dtype": "float32", "device_name": "cpu", "config": {"n_layer": 2}}]
    events += [{"v": 1, "type": "step", "iter": i, "t": 100.0 + i, "loss": 4.0 - i / 10, "dt_ms": 10.0, "mfu": 0.5}
               for i in range(5)]
    events += [{"v": 1, "type": "checkpoint", "iter": 3, "path": str(run / "ckpt.pt"), "val_loss": None}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert cli.main(["export", str(run), "-o", str(tmp_path / "r.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["checkpointed"]] == [2]        # checkpoint 3 holds steps 0..2
    assert rows[0]["tokens"] == 64 and rows[0]["tokens_per_s"] == 6400.0 and rows[0]["mfu_peak_flops"] == 1e12


def test_unknown_chart_types_are_refused_in_one_line(tmp_path, capsys):
    for name in ("loss.jpg", "loss", "loss.PNG.bak"):
        assert cli.main(["export", str(LOGS[0]), "--chart", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ".png, .svg or .pdf" in err
    assert cli.main(["export", *map(str, LOGS), "--chart", str(tmp_path / "loss.txt")]) == 2
    assert "one run" in capsys.readouterr().err
    assert cli.main(["export", *map(str, LOGS), "-o", str(tmp_path / "r.csv")]) == 2
    assert "one run" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("name,args", [("tb", ["--format", "csv", "-o"]), ("rows.jsonl", ["-o"]),
                                       ("loss.txt", ["--chart"])])
def test_an_existing_directory_where_a_file_goes_is_refused_naming_it(tmp_path, name, args, capsys):
    d = tmp_path / "ex" / name
    d.mkdir(parents=True)
    assert cli.main(["export", str(LOGS[0]), *args, str(d)]) == 2
    assert capsys.readouterr().err == f"error: {d}: is a directory, expected a file path\n"
    assert list(d.iterdir()) == [] and [p.name for p in d.parent.iterdir()] == [name]

@pytest.fixture
def full_disk(tmpfs):
    """A 64 KiB tmpfs, filled (root only; skipped, saying why, where mount is refused)."""
    mnt = tmpfs("full", "64k")
    fd = os.open(mnt / "fill", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass                           # full
    finally:
        os.close(fd)
    return mnt


@pytest.mark.parametrize("args,target", [
    (["-o", "{d}/rows.csv"], "rows.csv"),
    (["-o", "{d}/rows.parquet"], "rows.parquet"),
    (["--format", "tensorboard", "-o", "{d}/tb"], "tb"),
    (["--chart", "{d}/loss.png"], "loss.png"),
])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_part_of_it(full_disk, args, target, capsys):
    if target == "tb":
        pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    if target == "loss.png":
        pytest.importorskip("matplotlib", reason="the [plots] extra is not installed")
    assert cli.main(["export", str(LOGS[0]), *[a.format(d=full_disk) for a in args]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {full_disk / target}") and err.endswith(": No space left on device\n")
    assert err.count("\n") == 1                      # (tensorboard: the event file inside tb/ may be named)
    assert [p.name for p in full_disk.iterdir()] == ["fill"]    # no part of a file, no directory made for it


def test_a_full_disk_leaves_a_tensorboard_directory_that_was_there_as_it_was(full_disk, capsys):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    (full_disk / "tb").mkdir()
    assert cli.main(["export", str(LOGS[0]), "--format", "tensorboard", "-o", str(full_disk / "tb")]) == 1
    assert capsys.readouterr().err.endswith(": No space left on device\n")
    assert sorted(p.name for p in full_disk.iterdir()) == ["fill", "tb"] and list((full_disk / "tb").iterdir()) == []


def test_several_runs_to_tensorboard_are_written_all_or_nothing(tmpfs, capsys):
    """The first run's events fit, the second's don't: the first's go too, with the directories made."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    disk = tmpfs("small", "24k")
    second = FIXTURES / "train_log_shakespeare_char_cpu_fresh_const3000.txt"   # 40 KB of events
    assert cli.main(["export", str(LOGS[0]), str(second), "--format", "tensorboard", "-o", str(disk / "tb")]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: cannot write {disk / 'tb' / second.name}") and err.count("\n") == 1
    assert out == "" and list(disk.iterdir()) == []
