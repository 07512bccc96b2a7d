"""Run history: metrics.jsonl (torn lines, resumes) and nanoGPT log import on the real fixture logs."""

import json
import math
import re
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.run import nanogpt_log, protocol
from gpttui.run.history import RunHistory, RunLogError, load_run
from gpttui.run.metrics import MetricsTail, MetricsWriter, read_events

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG_124M = FIXTURES / "train_log_fineweb_124m.txt"
LOG_40M = FIXTURES / "train_log_fineweb_40m.txt"


def count_lines(path: Path) -> tuple[int, int, int]:
    """(iter lines, step lines, saving lines), counted independently of the importer."""
    text = path.read_text(encoding="utf-8").splitlines()
    iters = sum(1 for line in text if re.search(r"iter \d+: loss", line))
    steps = sum(1 for line in text if re.match(r"step \d+: train loss", line))
    saves = sum(1 for line in text if line.startswith("saving checkpoint to "))
    return iters, steps, saves


@pytest.mark.parametrize("path,stray", [(LOG_124M, 1), (LOG_40M, 2)])
def test_fixture_logs_import_every_record_and_count_stray_lines(path, stray):
    h = load_run(path)
    iters, steps, saves = count_lines(path)
    assert (len(h.steps), len(h.evals), len(h.checkpoints)) == (iters, steps, saves)
    assert h.skipped_lines == stray
    assert h.kind == "nanogpt-log"
    # the -100% MFU line is "not measured", not a value; the others are fractions against an A100
    assert h.steps[0].mfu is None and h.mfu_peak == 312e12
    assert 0.1 < h.steps[1].mfu < 0.2
    # every checkpoint belongs to the eval just before it
    assert all(c.iter in {e.iter for e in h.evals} for c in h.checkpoints)
    assert [s.iter for s in h.steps] == sorted(s.iter for s in h.steps)


def test_pythons_warnings_in_a_log_are_not_stray_lines():
    """torch prints two warnings (each with its source line) into every CPU nanoGPT log: output of
    the run, not lines gone wrong. An indented line after anything else still is."""
    real = load_run(FIXTURES / "train_log_shakespeare_char_cpu_readme3000_eval150.txt")
    assert "FutureWarning: `torch.cuda.amp.GradScaler" in Path(real.source).read_text(encoding="utf-8")
    assert real.skipped_lines == 0 and len(real.evals) == 21
    text = "\n".join([
        "/home/me/nanoGPT/train.py:196: FutureWarning: `torch.cuda.amp.GradScaler(args...)` is deprecated.",
        "  scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))",
        "step 0: train loss 4.2000, val loss 4.2100",
        "  an indented line after a record",
        "warnings: none here: Warning",
        "iter 0: loss 4.2000, time 900.00ms, mfu -100.00%",
    ]) + "\n"
    h = RunHistory.from_nanogpt_text(text, "log")
    assert h.skipped_lines == 2 and len(h.evals) == 1 and len(h.steps) == 1


def test_124m_log_config_echo_params_and_junk_prefixed_record():
    h = load_run(LOG_124M)
    assert h.config_file == "config/train_fineweb.py"
    assert h.config["n_layer"] == 12 and h.config["n_embd"] == 768 and h.config["max_iters"] == 12000
    assert h.config["vocab_size"] == 50304          # "defaulting to vocab_size of GPT-2 to 50304"
    assert h.config_complete and not h.config_unknown
    assert h.tokens_per_iter == 524_288 and h.max_iters == 12000
    assert h.params_reported == pytest.approx(123.59e6)
    assert "~125M parameters" in h.config_text
    step = next(s for s in h.steps if s.iter == 7800)   # the line reads "33iter 7800: ..."
    assert (step.loss, step.dt_ms, step.mfu) == (3.2876, 9349.59, 0.1363)
    assert h.last_iter == 10200 and h.best_val == 3.3581
    assert h.tokens_seen == 10201 * 524_288   # iterations 0 to 10200, each a step


def test_40m_log_has_no_config_so_its_figures_stay_unknown():
    h = load_run(LOG_40M)
    assert h.config == {} and not h.config_complete
    assert h.tokens_per_iter is None and h.max_iters is None and h.tokens_seen is None
    assert h.params_reported is None and h.train_config() is None
    assert h.last_iter == 20000 and h.evals[-1].val_loss == 3.5228


def test_stray_lines_overrides_unknown_keys_and_restarts_are_tolerated():
    text = "\n".join([
        "$ python train.py config/x.py --max_iters=300",
        "Overriding config with config/x.py:",
        "n_layer = 2",
        "my_own_knob = 7  # a key gpttui does not know",
        "import time",
        "",
        "Overriding: max_iters = 300",
        "found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)",
        "tokens per iteration will be: 16,384",
        "step 0: train loss 4.2000, val loss 4.2100",
        "iter 0: loss 4.1900, time 900.00ms, mfu -100.00%",
        "   ",
        "Traceback (most recent call last):",
        "iter 100: loss 2.5000, time 40.00ms, mfu 3.00%",
        "step 200: train loss 2.0000, val loss 2.1000",
        "saving checkpoint to out",
        "iter 200: loss 2.0500, time 60.00ms, mfu 2.90%",
        "iter 300: loss 1.9000, time 40.00ms, mfu 2.95%",
        "Resuming training from out",            # restarted from the iter-200 checkpoint
        "step 200: train loss 2.0000, val loss 2.1000",
        "iter 200: loss 2.0400, time 800.00ms, mfu -100.00%",
        "iter 250: loss 1.9500, time 41.00ms, mfu 3.00%",
        "iter 260: loss 1.9",                  # torn at the end
    ])
    h = RunHistory.from_nanogpt_text(text, "x.log")
    assert h.config["n_layer"] == 2 and h.config["max_iters"] == 300 and h.config["vocab_size"] == 65
    assert h.config_unknown["my_own_knob"] == "7"
    assert h.tokens_per_iter == 16384
    # "$ python", the whitespace line, the Traceback line and the torn record are stray
    assert h.skipped_lines == 4
    # the abandoned iter-300 branch is gone; iterations only move forward
    assert [s.iter for s in h.steps] == [0, 100, 200, 250]
    assert h.steps[2].dt_ms == 800.0
    assert [e.iter for e in h.evals] == [0, 200] and len(h.checkpoints) == 1
    assert [s.start_iter for s in h.sessions] == [0, 200]


def test_a_checkpoint_after_a_restart_belongs_to_the_eval_that_still_stands():
    text = "\n".join([
        "step 500: train loss 2.0000, val loss 2.1000",
        "iter 500: loss 2.0000, time 900.00ms, mfu -100.00%",
        "step 1000: train loss 1.5000, val loss 1.6000",
        "iter 1000: loss 1.5000, time 40.00ms, mfu 3.00%",
        "iter 600: loss 1.9000, time 800.00ms, mfu -100.00%",   # restarted from an earlier checkpoint
        "saving checkpoint to out",
        "device cuda (NVIDIA H100 80GB HBM3), bfloat16, compiled; peak 989.0 TFLOP/s",
        "stopped at iter 600",
    ])
    log = nanogpt_log.parse(text)
    assert [(e["type"], e["iter"]) for e in log.events] == [
        ("eval", 500), ("session", 500), ("step", 500), ("eval", 1000), ("step", 1000),
        ("session", 600), ("step", 600), ("checkpoint", 500)]
    assert log.events[-1]["val_loss"] == 2.1 and log.mfu_peak == 989e12 and log.state == "stopped"
    h = RunHistory.from_nanogpt_text(text)
    assert [e.iter for e in h.evals] == [500] and [s.iter for s in h.steps] == [500, 600]
    assert [s.start_iter for s in h.sessions] == [500, 600] and h.checkpoints[0].iter == 500


def events_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with MetricsWriter(run / "metrics.jsonl") as w:
        w.write(protocol.event("hello", 0, version=1, config={"max_iters": 20, "eval_interval": 5},
                               params={"total": 10, "nanogpt": 9, "non_embedding": 5}, device="cpu",
                               peak_flops=1e11, tokens_per_iter=64, start_iter=0, max_iters=20))
        for i in range(11):
            w.write(protocol.event("step", i, loss=3.0 - i * 0.1, lr=1e-3, dt_ms=10.0, tokens_per_s=6400.0,
                                   mfu=0.3, grad_norm=1.0, tokens=(i + 1) * 64))
            if i % 5 == 0:
                w.write(protocol.event("eval", i, train_loss=3.0 - i * 0.1, val_loss=3.1 - i * 0.1,
                                       best_val_loss=3.1 - i * 0.1))
                w.write(protocol.event("checkpoint", i, path=str(run / "ckpt.pt"), val_loss=3.1 - i * 0.1))
        w.write(protocol.event("config", 10, changes={"max_iters": 40}))
        w.write({"type": "brand_new_type", "iter": 10, "t": 0.0, "whatever": 1})
    return run


def test_metrics_jsonl_torn_last_line_is_skipped_and_counted(tmp_path):
    run = events_run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"type": "step", "iter": 11, "loss": 2.')   # killed mid-write
    h = RunHistory.from_metrics(run)
    assert h.skipped_lines == 1
    assert h.last_iter == 10 and len(h.steps) == 11 and len(h.evals) == 3 and len(h.checkpoints) == 3
    assert h.max_iters == 40                       # the live change
    assert h.tokens_per_iter == 64 and h.tokens_seen == 11 * 64
    assert len(list(read_events(run / "metrics.jsonl"))) == 11 + 3 + 3 + 1 + 1 + 1
    assert load_run(run / "metrics.jsonl").last_iter == 10


def test_hello_with_an_earlier_start_replaces_the_abandoned_branch(tmp_path):
    h = RunHistory.from_metrics(events_run(tmp_path))
    h.add(protocol.event("hello", 5, version=1, config={"max_iters": 20}, params={}, device="cpu",
                         peak_flops=1e11, tokens_per_iter=64, start_iter=5))
    assert h.last_iter == 4
    assert [e.iter for e in h.evals] == [0] and [c.iter for c in h.checkpoints] == [0, 5]  # resumed from 5
    for i in range(5, 8):
        h.add(protocol.event("step", i, loss=1.0, lr=1e-3, dt_ms=10.0, tokens_per_s=1.0, mfu=0.3, grad_norm=1.0))
    its = [s.iter for s in h.steps]
    assert its == list(range(8))                   # no zig-zag
    assert len(h.sessions) == 2


def test_until_judges_the_run_as_it_stood(tmp_path):
    h = RunHistory.from_metrics(events_run(tmp_path))
    past = h.until(6)
    assert past.last_iter == 6 and [e.iter for e in past.evals] == [0, 5]
    assert h.last_iter == 10                       # the original is untouched


def test_metrics_tail_waits_for_the_newline(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(protocol.encode(protocol.event("state", 0, state="running")) + '{"type": "st')
    tail = MetricsTail(path)
    assert [e["state"] for e in tail.poll()] == ["running"]
    with open(path, "a") as f:
        f.write('ate", "iter": 0, "state": "paused"}\n')
    assert [e["state"] for e in tail.poll()] == ["paused"]
    assert tail.poll() == [] and tail.skipped == 0


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunLogError, match="no such run directory or log file"):
        load_run(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    with pytest.raises(RunLogError, match="notes.txt: no nanoGPT"):
        load_run(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunLogError, match="not a run directory"):
        load_run(tmp_path / "empty")


def test_metrics_writer_writes_one_json_object_per_line(tmp_path):
    path = tmp_path / "m.jsonl"
    w = MetricsWriter(path)
    w.write(protocol.event("log", 0, message="a"))
    # flushed per line: readable before close
    assert json.loads(path.read_text().splitlines()[0])["message"] == "a"
    w.write(protocol.event("step", 1, loss=float("nan"), lr=0.0, dt_ms=1.0, tokens_per_s=1.0, mfu=0.0, grad_norm=0.0))
    w.close()
    step = json.loads(path.read_text().splitlines()[1])
    assert step["loss"] is None                    # NaN travels as null


def test_non_finite_losses_are_kept_as_they_are_and_non_finite_times_dropped():
    log = nanogpt_log.parse("\n".join([
        "step 0: train loss nan, val loss 4.2",
        "iter 10: loss 1e999, time 1ms, mfu 1%",
        "iter 20: loss inf, time infms, mfu nan%",
        "iter 30: loss -inf, time 1e999ms, mfu 5%",
        "iter 40: loss nan, time 100.00ms, mfu 5.00%",
    ]))
    ev, *steps = log.events[:1] + [e for e in log.events if e["type"] == "step"]
    assert math.isnan(ev["train_loss"]) and ev["val_loss"] == 4.2
    assert [s["loss"] for s in steps[:3]] == [math.inf, math.inf, -math.inf] and math.isnan(steps[3]["loss"])
    assert [s["dt_ms"] for s in steps] == [1.0, None, None, 100.0]
    assert log.stray == 0


def test_a_fine_tune_from_gpt2_weights_is_on_their_vocabulary():
    """nanoGPT's finetune_shakespeare loads GPT-2's weights and says so; the forecast's prior
    follows the vocabulary (a subword one here), and no line of it is stray."""
    h = RunHistory.from_nanogpt_text("\n".join([
        "Overriding config with config/finetune_shakespeare.py:",
        "init_from = 'gpt2-xl'",
        "tokens per iteration will be: 32,768",
        "Initializing from OpenAI GPT-2 weights: gpt2-xl",
        "loading weights from pretrained gpt: gpt2-xl",
        "forcing vocab_size=50257, block_size=1024, bias=True",
        "overriding dropout rate to 0.1",
        "step 0: train loss 3.1000, val loss 3.2000",
    ]), "ft.log")
    assert h.config["init_from"] == "gpt2-xl" and h.vocab_size == 50257 and h.skipped_lines == 0


@pytest.mark.parametrize("encoding, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                           ("utf-8", b"\xef\xbb\xbf"), ("utf-32-le", b"\xff\xfe\x00\x00")],
                         ids=["utf-16-le", "utf-16-be", "utf-8-bom", "utf-32-le"])
def test_a_log_saved_by_windows_tools_reads_as_the_same_log(tmp_path, capsys, encoding, bom):
    """Windows PowerShell 5's `python train.py > log.txt` writes UTF-16 LE with a byte-order mark and
    CRLF line ends; Out-File -Encoding utf8 and Notepad, UTF-8 with a mark. Read as UTF-8, the first
    held no lines at all and the second lost its first, the config file's echo (so the lr and dtype)."""
    plain = FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt"
    text = plain.read_text(encoding="utf-8")
    windows = tmp_path / "log.txt"
    windows.write_bytes(bom + text.replace("\n", "\r\n").encode(encoding))
    assert cli.main(["doctor", str(plain)]) == 0
    expected = capsys.readouterr().out.splitlines()[1:]   # (the first line names the file)
    assert cli.main(["doctor", str(windows)]) == 0
    shown = capsys.readouterr().out.splitlines()[1:]
    assert shown == expected
    assert any("lr 1.0e-03" in line for line in shown)            # the stock config echoed on the first line
    assert any("float32" in line for line in shown)               # and the dtype override


PREFIXES = {   # what tools put before each line, given the line's number
    "torchrun --tee": lambda i: "[default0]:",
    "ts": lambda i: f"Dec 03 22:{i // 60 % 60:02d}:{i % 60:02d} ",
    "docker logs -t": lambda i: f"2026-12-03T22:{i // 60 % 60:02d}:{i % 60:02d}.{i * 7919 % 10 ** (1 + i % 9)}Z ",
}


@pytest.mark.parametrize("tool", PREFIXES)
def test_a_log_whose_every_line_a_tool_prefixed_reads_as_the_same_log(tmp_path, capsys, tool):
    """The eval and iteration lines were found after a prefix, but the config's echo, the overrides
    and the parameter count, read from a line's start, were not: no lr, no dtype, no size."""
    plain = FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt"
    prefixed = tmp_path / "log.txt"
    prefixed.write_text("".join(PREFIXES[tool](i) + line + "\n"
                                for i, line in enumerate(plain.read_text(encoding="utf-8").splitlines())))
    assert cli.main(["doctor", str(plain)]) == 0
    expected = capsys.readouterr().out.splitlines()[1:]   # (the first line names the file)
    assert cli.main(["doctor", str(prefixed)]) == 0
    shown = capsys.readouterr().out.splitlines()[1:]
    assert shown == expected
    assert any("lr 1.0e-03" in line for line in shown) and any("0.80M" in line for line in shown)


def test_a_record_torn_by_junk_now_and_then_is_no_prefix():
    lines = LOG_124M.read_text(encoding="utf-8").splitlines()
    torn = next(i for i, line in enumerate(lines) if line.startswith("iter "))
    lines[torn] = "^C^Z" + lines[torn]
    assert nanogpt_log.line_prefix(lines) is None
    assert nanogpt_log.line_prefix(["iter 1: loss 4.0, time 1.00ms", "x"]) is None


OOM = (Path(__file__).resolve().parent / "fixtures" / "tracebacks" / "cuda_oom.txt").read_text(encoding="utf-8")
CHAINED = """Traceback (most recent call last):
  File "/home/u/nanoGPT/train.py", line 290, in <module>
    X, Y = get_batch('train')
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/home/u/nanoGPT/train.py", line 292, in <module>
    raise
KeyboardInterrupt
"""


def _log_ending(n_lines: int, tail: str) -> str:
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines()
    return "\n".join(lines[:n_lines]) + "\n" + tail


def test_a_traceback_that_ends_a_log_is_how_the_run_ended_and_no_stray_lines():
    clean = RunHistory.from_nanogpt_text(_log_ending(100, ""))
    h = RunHistory.from_nanogpt_text(_log_ending(100, OOM))
    assert h.skipped_lines == clean.skipped_lines and h.last_iter == clean.last_iter
    assert [(e["iter"], e["message"][:40]) for e in h.errors] == [(clean.last_iter, "torch.OutOfMemoryError: CUDA out of memo")]
    assert h.fatal_error is h.errors[-1]
    assert h.until(clean.last_iter - 10).fatal_error is None          # as it stood before it died
    chained = RunHistory.from_nanogpt_text(_log_ending(100, CHAINED))
    assert chained.fatal_error["message"] == "KeyboardInterrupt" and chained.skipped_lines == clean.skipped_lines


def test_a_traceback_that_records_follow_did_not_end_the_run():
    """A run appended to the same log after the one that died (`>> log.txt`)."""
    lines = _log_ending(168, "").splitlines()
    h = RunHistory.from_nanogpt_text("\n".join(lines[:100] + OOM.splitlines() + lines[100:]))
    assert h.errors == [] and h.fatal_error is None and h.last_iter == 700


def test_under_torchrun_the_workers_error_is_how_the_run_ended_not_the_launchers():
    worker = "".join(f"[rank0]: {line}\n" for line in OOM.splitlines())
    launcher = """E1203 13:23:20.000000 32974 torch/distributed/elastic/multiprocessing/api.py:874] failed (exitcode: 1)
Traceback (most recent call last):
  File "/usr/bin/torchrun", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
"""
    h = RunHistory.from_nanogpt_text(_log_ending(100, worker + launcher))
    assert h.fatal_error["message"].startswith("torch.OutOfMemoryError: CUDA out of memory.")
    alone = RunHistory.from_nanogpt_text(_log_ending(100, launcher))   # the worker's error not printed
    assert alone.fatal_error["message"].startswith("torch.distributed.elastic.multiprocessing.errors.ChildFailedError")


@pytest.mark.parametrize("encoding, bom, end", [("utf-8", b"", "\n"), ("utf-16-le", b"\xff\xfe", "\r\n"),
                                                ("utf-8", b"", "\r\n")], ids=["utf-8", "utf-16-crlf", "utf-8-crlf"])
def test_a_log_read_as_it_grows_gives_the_events_of_the_log_read_whole(tmp_path, encoding, bom, end):
    """train.py writes a line in pieces (UTF-16 in bytes that split a character, a CRLF split between
    its CR and its LF): each read parses the lines ended so far; a line still being written waits."""
    whole = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8")
    data = bom + whole.replace("\n", end).encode(encoding)
    log = tmp_path / "log.txt"
    log.write_bytes(b"")
    reader = nanogpt_log.LogReader(log)
    events = []
    cr = "\r".encode(encoding)
    cuts = {*range(0, len(data), 777), *(i + len(cr) for i in range(len(data)) if data.startswith(cr, i))}
    cuts = sorted(cuts | {len(data)})   # pieces that end mid-line, mid-character, between a CR and its LF
    for start, stop in zip(cuts, cuts[1:]):
        with open(log, "ab") as f:
            f.write(data[start:stop])
        events += reader.read()
    assert events == nanogpt_log.parse(whole).events
    assert reader.log().config == nanogpt_log.parse(whole).config and reader.log().stray == 0


def test_a_log_that_has_only_its_header_so_far_is_a_run_starting(tmp_path):
    """train.py prints its config and parameter count, then compiles for a minute: no record yet,
    and `gpttui open` of it then waited for nothing: it was refused ('no nanoGPT lines')."""
    text = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8")
    (tmp_path / "log.txt").write_text(text[:text.index("\nstep 0:") + 1])
    h = load_run(tmp_path / "log.txt")
    assert not h.steps and h.config_complete and h.config["learning_rate"] == 1e-3
    (tmp_path / "other.txt").write_text("$ ls\nREADME.md  train.py\n")
    with pytest.raises(RunLogError, match="no nanoGPT 'iter N: loss ...'"):
        load_run(tmp_path / "other.txt")


def test_a_prefixed_log_followed_from_its_header_reads_the_header_too(tmp_path):
    """`python train.py | ts > log.txt`, opened while train.py still compiles: the prefix shows with
    the first record, and the header read before it is read again without it."""
    text = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8")
    prefixed = [PREFIXES["ts"](i) + line + "\n" for i, line in enumerate(text.splitlines())]
    first = next(i for i, line in enumerate(prefixed) if "step 0:" in line)
    log = tmp_path / "log.txt"
    log.write_text("".join(prefixed[:first]))
    reader = nanogpt_log.LogReader(log)
    events = reader.read()
    with open(log, "a") as f:
        f.writelines(prefixed[first:])
    events += reader.read()
    whole = nanogpt_log.parse(text)
    assert events == whole.events and reader.log().config == whole.config and reader.log().stray == 0
