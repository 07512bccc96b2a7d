"""The doctor's words a user reads: a loss that stopped being a number, the trend of a short run
(a fall never past 100%), and how many evals the time line counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.analysis import doctor, forecast
from gpttui.run import protocol
from gpttui.run.history import RunHistory, load_run
from gpttui.run.metrics import MetricsWriter

TPI = "tokens per iteration will be: 8,192"


def log(*lines: str) -> str:
    return "\n".join([TPI, *lines]) + "\n"


def finding(r: doctor.Report, key: str) -> doctor.Finding:
    return next(f for f in r.findings if f.key == key)


def test_a_diverged_nanogpt_log_is_reported_at_the_first_nan(tmp_path, capsys):
    path = tmp_path / "train_log.txt"
    path.write_text(log(
        "step 0: train loss 10.9000, val loss 10.9100",
        "iter 0: loss 10.9000, time 900.00ms, mfu -100.00%",
        *(f"iter {i}: loss {10 - i / 20:.4f}, time 100.00ms, mfu 5.00%" for i in range(10, 100, 10)),
        "step 100: train loss 5.0000, val loss 5.1000",
        "saving checkpoint to out",
        "iter 100: loss 5.0000, time 100.00ms, mfu 5.00%",
        "iter 110: loss nan, time 100.00ms, mfu 5.00%",
        "iter 120: loss nan, time 100.00ms, mfu 5.00%",
    ))
    assert cli.main(["doctor", str(path)]) == 0
    text = capsys.readouterr().out
    assert "loss          train loss became NaN at iter 110" in text
    assert ("[WARN] the run diverged at iter 110: resume from the checkpoint at iter 100 with a lower "
            "learning_rate") in text
    r = doctor.diagnose(load_run(path))
    assert r.findings[0].key == "nonfinite" and r.findings[0].level == "warn"
    assert r.timing.mean_iter_ms == pytest.approx(100.0)   # the NaN iterations' times are real times


def test_garbled_non_finite_lines_are_kept_named_and_kept_out_of_the_time(tmp_path, capsys):
    path = tmp_path / "garb_log.txt"
    path.write_text(log(
        "step 0: train loss nan, val loss 4.2",
        "iter 0: loss 4.2000, time 900.00ms, mfu -100.00%",
        *(f"iter {i}: loss 3.9000, time 100.00ms, mfu 5.00%" for i in range(10, 60, 10)),
        "iter 60: loss 1e999, time 1e999ms, mfu 1%",
        "iter 70: loss inf, time nanms, mfu 5%",
        "iter 80: loss 3.5000, time 100.00ms, mfu 5.00%",
    ))
    h = load_run(path)
    assert [(s.iter, s.loss, s.dt_ms) for s in h.steps if s.iter >= 60] == [
        (60, float("inf"), None), (70, float("inf"), None), (80, 3.5, 100.0)]
    r = doctor.diagnose(h)
    f = finding(r, "nonfinite")
    assert f.lines == ["train loss (eval) became NaN at iter 0", "3 non-finite losses in all, the last at iter 70"]
    assert f.verdict.startswith("finite losses follow") and f.level == "warn"
    assert r.timing.mean_iter_ms == pytest.approx(100.0)   # no time from the lines whose times are not numbers
    out = tmp_path / "rows.csv"
    assert cli.main(["export", str(path), "-o", str(out)]) == 0
    rows = {(row.split(",")[0], row.split(",")[1]): row for row in out.read_text().splitlines()[1:]}
    assert ',inf,' in rows[('"step"', "60")] and ',nan,' in rows[('"eval"', "0")]   # kept: NaN is data
    assert cli.main(["export", str(path), "--chart", str(tmp_path / "c.txt"), "-o", str(tmp_path / "r.csv")]) == 0
    capsys.readouterr()


def metrics_run(tmp_path: Path, events: list[dict]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    with MetricsWriter(run / "metrics.jsonl") as w:
        for e in events:
            w.write(e)
    return run


def step(it: int, loss: float, t: float) -> dict:
    return {**protocol.event("step", it, loss=loss, lr=1e-3, dt_ms=10.0, tokens_per_s=100.0, mfu=0.1,
                             grad_norm=1.0, tokens=(it + 1) * 64), "t": t}


def test_a_nan_step_loss_in_metrics_jsonl_is_reported(tmp_path, capsys):
    events = [step(i, 3.0 if i < 7 else float("nan"), 1000.0 + i) for i in range(10)]   # NaN travels as null
    run = metrics_run(tmp_path, events)
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[7])["loss"] is None
    assert cli.main(["doctor", str(run)]) == 0
    text = capsys.readouterr().out
    assert "train loss became NaN or infinite at iter 7" in text and "the run diverged at iter 7" in text
    assert cli.main(["doctor", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["findings"][0]["key"] == "nonfinite" and report["findings"][0]["level"] == "warn"


def test_a_run_with_finite_losses_has_no_such_finding():
    r = doctor.diagnose(load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt" /
                                 "train_log_fineweb_40m.txt"))
    assert all(f.key != "nonfinite" for f in r.findings)


def evals_only(points: list[tuple[int, float]]) -> RunHistory:
    h = RunHistory(source="short")
    for it, val in points:
        h.add({"type": "eval", "iter": it, "train_loss": val, "val_loss": val})
    return h


def test_a_60_iteration_run_states_its_own_fall_never_past_100_percent():
    """The walkthrough's out-tiny: a steep fall over 60 iterations read as '-128.24% per 1000 iters'."""
    h = evals_only([(0, 10.95), (20, 7.2), (40, 5.1), (60, 3.2)])
    r = doctor.diagnose(h)
    f = finding(r, "trend")
    assert f.lines[0] == "val -4.0000 (-55.56%) over iters 20-60, the last 3 of 4 evals; best val 3.2000"
    assert "per 1000 iters" not in f.lines[0]
    assert f.verdict.startswith("still falling: ") and "over the next 60 iters at this rate" in f.verdict
    falls = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)%", " ".join([*f.lines, f.verdict]))]
    assert falls and max(falls) < 100
    assert -1 <= r.trend["relative_per_1000"] < r.trend["relative_over_window"] < 0 < r.trend["gain_ahead"] < 1
    assert r.trend["horizon"] == 60


def test_a_long_run_keeps_its_rate_per_1000_iterations():
    h = evals_only([(i * 500, 4.0 - i * 0.01) for i in range(1, 13)])
    f = finding(doctor.diagnose(h), "trend")
    assert f.lines[0].startswith("val -0.0200 per 1000 iters (-0.5") and "over the last 4 of 12 evals" in f.lines[0]
    assert "over the next 1,500 iters" in f.verdict   # a quarter of the 6,000 iterations so far


def test_the_time_line_counts_evals_out_of_the_runs_evals(tmp_path):
    """4 evals (0, 20, 40, 60); the one at the start is start-up, not eval overhead."""
    path = tmp_path / "tiny.log"
    lines = []
    for i in range(60):
        if i % 20 == 0:
            lines.append(f"step {i}: train loss 4.0, val loss 4.1")
        mfu = "-100.00" if i < 5 else "5.00"
        lines.append(f"iter {i}: loss 4.0000, time {1500 if i in (20, 40) else 100}.00ms, mfu {mfu}%")
    lines.append("step 60: train loss 3.9, val loss 4.0")
    path.write_text(log(*lines))
    t = doctor.diagnose(load_run(path)).timing
    assert (t.evals, t.evals_total) == (3, 4)
    text = doctor.render(doctor.diagnose(load_run(path)))
    assert "(3 of 4 evals, 1.4 s each; the rest fall in start-up)" in text

    # the same run as the engine writes it: the eval at 60 and its checkpoint come after the last step
    ts = 1000.0
    events = [{"type": "hello", "iter": 0, "t": ts, "version": 1, "start_iter": 0, "max_iters": 60}]
    for i in range(60):
        if i % 20 == 0:
            ts += 1.4 if i else 0.0
            events.append({**protocol.event("eval", i, train_loss=4.0, val_loss=4.1), "t": ts})
        ts += 0.01   # the steps' dt_ms
        events.append(step(i, 4.0, ts))
    ts += 1.4
    events.append({**protocol.event("eval", 60, train_loss=3.9, val_loss=4.0), "t": ts})
    t = doctor.diagnose(load_run(metrics_run(tmp_path, events))).timing
    assert (t.evals, t.evals_total) == (3, 4)
    assert abs(t.eval_overhead_s - 3 * 1.4) < 0.05


DECAY_PAST_END = Path(__file__).resolve().parent / "fixtures" / "decay_past_end"


def test_a_cosine_that_decays_past_max_iters_is_called_out_with_what_moving_it_would_give(capsys):
    """max_iters changed alone leaves the cosine decaying to lr_decay_iters: the run ends with its
    lr still high. Half way the doctor says so and what lr_decay_iters = max_iters from here would give
    (lower than the run as it is); finished, only the advice."""
    assert cli.main(["doctor", str(DECAY_PAST_END), "--until", "1500"]) == 0
    text = capsys.readouterr().out
    assert "lr decay      cosine decays to iter 5,000, past max_iters 3,000: the lr ends at 4.22e-04, 36% of" in text
    assert "[WARN] the run ends before its lr has decayed: set lr_decay_iters = max_iters (3,000)" in text
    h = load_run(DECAY_PAST_END)
    r = doctor.diagnose(h.until(1500))
    what_if = re.search(r"from iter 1,500 on: val ([\d.]+) \(([\d.]+)-([\d.]+)\) at iter 3,000, against ([\d.]+)",
                        finding(r, "decay").lines[1])
    moved, low, high, as_is = map(float, what_if.groups())
    assert as_is == round(r.forecast.val_loss, 3) and low < moved < high and moved < as_is - 0.01
    finished = doctor.diagnose(h)
    assert len(finding(finished, "decay").lines) == 1 and finding(finished, "decay").level == "warn"
    keys = [f.key for f in finished.findings]
    assert keys.index("decay") == keys.index("forecast") + 1


def test_a_cosine_that_ends_at_max_iters_has_no_such_finding():
    readme = load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt"
                      / "train_log_shakespeare_char_cpu_readme2000.txt")   # --lr_decay_iters=2000 --max_iters=2000
    assert readme.train_config().lr_decay_iters == readme.max_iters == 2000
    assert "decay" not in [f.key for f in doctor.diagnose(readme).findings]


def test_too_few_evals_says_where_the_first_forecast_comes_and_it_does():
    """The README's CPU recipe evaluates every 250 of 2,000: at half it has too few evals past the
    transient; the doctor names the eval that gives one, and at that eval there is one."""
    h = load_run(Path(__file__).resolve().parent / "fixtures" / "nanogpt"
                 / "train_log_shakespeare_char_cpu_readme2000.txt")
    at_half = finding(doctor.diagnose(h.until(1000)), "forecast")
    assert at_half.verdict == ("too little to forecast: 3 evals past the first 30% of the run so far (the initial "
                               "transient), 4 needed; the eval at iter 1,250 can give one (every 250)")
    assert doctor.diagnose(h.until(1250)).forecast is not None
    assert doctor.diagnose(h.until(1249)).forecast is None
    # a run that ends before that eval is told so
    assert forecast.no_forecast([0, 250, 500, 750, 1000], [4.2, 2.4, 2.3, 2.2, 2.1], None, 250, 1100).endswith(
        "; none before max_iters 1,100 (evals every 250)")
