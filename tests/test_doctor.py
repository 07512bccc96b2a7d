"""The run doctor on the real fixture logs (figures the log implies, forecast back-tests) and on
synthetic runs (timestamps, overfitting, plateau)."""

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.analysis import doctor
from gpttui.run import config as C
from gpttui.run import protocol, sizing
from gpttui.run.history import RunHistory, load_run
from gpttui.run.metrics import MetricsWriter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG_124M = FIXTURES / "train_log_fineweb_124m.txt"
LOG_40M = FIXTURES / "train_log_fineweb_40m.txt"
# gpttui runs made on this CPU (hello + evals of metrics.jsonl): the demo's char model on
# tiny Shakespeare (4x128, 5000 iters) and a smaller one (2x64, 1500 iters), cosine schedules
RUNS = Path(__file__).resolve().parent / "fixtures" / "runs"
CHAR_DEMO = RUNS / "char_4x128_5000.jsonl"
CHAR_SMALL = RUNS / "char_2x64_1500.jsonl"


def time_lines(path: Path) -> tuple[dict[int, float], set[int]]:
    """{iter: seconds} from the `iter N: ... time Tms` lines and the eval iterations, read by regex."""
    text = path.read_text(encoding="utf-8")
    times = {int(i): float(ms) / 1000 for i, ms in re.findall(r"iter (\d+): loss \S+, time ([\d.]+)ms", text)}
    evals = {int(i) for i in re.findall(r"^step (\d+):", text, re.M)}
    return times, evals


@pytest.mark.parametrize("path", [LOG_124M, LOG_40M])
def test_duration_and_eval_overhead_follow_the_time_lines(path):
    times, evals = time_lines(path)
    last = max(times)
    normal = [t for i, t in times.items() if i > 0 and i not in evals]
    pauses = [times[i] - statistics.median(normal) for i in evals if i in times and i > 0]
    n_evals = len([i for i in evals if i > 0])
    # every iteration at the normal pace, plus a measured pause per eval, plus iter 0's compile
    expected = (last + 1) * statistics.median(normal) + n_evals * statistics.fmean(pauses) \
        + (times[0] - statistics.median(normal))
    r = doctor.diagnose(load_run(path))
    t = r.timing
    assert t.iterations == last + 1
    assert t.duration_s == pytest.approx(expected, rel=0.005)
    assert t.evals == n_evals
    assert t.eval_pause_s == pytest.approx(statistics.fmean(pauses), rel=0.01)
    assert t.eval_overhead == pytest.approx(n_evals * statistics.fmean(pauses) / expected, rel=0.02)
    assert t.mean_iter_ms == pytest.approx(statistics.fmean(normal) * 1000, rel=1e-6)
    print(f"\n{path.name}: duration {t.duration_s / 3600:.2f} h, eval overhead {t.eval_overhead:.3%} "
          f"({t.evals} evals x {t.eval_pause_s:.1f} s), mean iteration {t.mean_iter_ms:.1f} ms")


def test_124m_log_parameters_tokens_and_mfu():
    r = doctor.diagnose(load_run(LOG_124M))
    assert r.params["nanogpt"] == 123_587_328                    # "number of parameters: 123.59M"
    assert round(r.params["nanogpt"] / 1e6, 2) == 123.59
    assert r.params["non_embedding"] == 123_587_328 - 50304 * 768
    assert r.tokens["seen"] == 10201 * 524_288                  # iterations 0 to 10200, each a step
    assert r.tokens["per_param"] == pytest.approx(10201 * 524_288 / 123_587_328)
    assert r.max_iters == 12000 and r.timing.eta_s is not None
    # nanoGPT's MFU is against an A100; the steady state (evals excluded) is flops / (dt * 312e12)
    flops = (6 * 123_587_328 + 12 * 12 * 768 * 1024) * 524_288
    assert r.mfu["steady_vs_a100"] == pytest.approx(flops / (r.timing.mean_iter_ms / 1000) / 312e12, rel=1e-3)
    assert r.mfu["mfu"] is None and "--device" in r.findings[-2].verdict
    withdev = doctor.diagnose(load_run(LOG_124M), device="RTX 4090")
    assert withdev.mfu["mfu"] == pytest.approx(flops / (r.timing.mean_iter_ms / 1000) / 165.2e12, rel=1e-3)
    verdicts = {f.key: f for f in r.findings}
    assert "~125M" in verdicts["params"].verdict and verdicts["params"].level == "ok"
    assert verdicts["data"].lines == ["1 stray line skipped of 136"]   # "$ python ...": its warning is no stray


def test_40m_log_unknowns_are_null_not_guessed(capsys):
    assert cli.main(["doctor", str(LOG_40M), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] is None and out["tokens_seen"] is None and out["max_iters"] is None
    assert out["duration_s"] > 20 * 3600 and 0.005 < out["eval_overhead"] < 0.01
    assert out["forecast"]["iter"] == 20000                       # the last known iteration
    assert set(out["forecast"]) == {"iter", "val_loss", "low", "high"}
    assert out["mfu"]["mfu"] is None


def back_test(path: Path, frac: float) -> tuple[float, dict]:
    h = load_run(path)
    its, vals = h.val_curve()
    last, truth = its[-1], vals[-1]
    cut = int(last * frac)
    f = doctor.diagnose(h.until(cut), forecast_at=last).forecast
    return (f.val_loss - truth) / truth, {"truth": truth, "low": f.low, "high": f.high, "cut": cut, "at": last}


@pytest.mark.parametrize("path", [LOG_124M, LOG_40M])
def test_forecast_back_tests(path):
    """Fit on the evals up to a cut, predict the run's last val loss (printed with -s): from half
    the run on, inside the stated band. The two nanoGPT logs are held out of the forecast's tuning
    (bench/forecast_backtest.py reports their errors): a bound on the error here would tune the
    constants to them."""
    for frac in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        err, info = back_test(path, frac)
        print(f"\n{path.name}: fit to iter {info['cut']:>5}, predict iter {info['at']}: "
              f"error {err:+.2%} (band {info['low']:.3f}-{info['high']:.3f}, truth {info['truth']:.4f})", end="")
        if frac >= 0.5:
            assert info["low"] <= info["truth"] <= info["high"]


def test_until_judges_the_log_at_that_iteration(capsys):
    assert cli.main(["doctor", str(LOG_124M), "--until", "6000", "--forecast-at", "9000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["last_iter"] == 6000 and out["tokens_seen"] == 6001 * 524_288
    assert out["forecast"]["iter"] == 9000
    assert [f["iter"] for f in out["forecasts"]] == [9000, 12000, 24000]
    assert out["duration_s"] < doctor.diagnose(load_run(LOG_124M)).timing.duration_s


def test_text_report_has_a_verdict_per_finding(capsys):
    assert cli.main(["doctor", str(LOG_124M)]) == 0
    text = capsys.readouterr().out
    for title in ("parameters", "tokens", "loss trend", "train/val gap", "forecast", "time", "MFU"):
        assert re.search(rf"^{re.escape(title)}\s", text, re.M), title
    assert "123.59M" in text and "5.35B seen" in text
    assert text.count("[ok  ]") + text.count("[note]") + text.count("[WARN]") == 8


def test_bad_path_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["doctor", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run directory or log file" in err


def synthetic(evals: list[tuple[int, float, float]]) -> RunHistory:
    h = RunHistory(source="synthetic")
    for it, train, val in evals:
        h.add({"type": "eval", "iter": it, "train_loss": train, "val_loss": val})
    return h


def test_overfitting_is_flagged_when_val_rises_while_train_falls():
    h = synthetic([(i * 100, 2.0 - i * 0.05, 2.1 - i * 0.05 if i < 8 else 1.75 + (i - 8) * 0.03) for i in range(14)])
    r = doctor.diagnose(h)
    assert r.gap["overfitting"] is True
    gap = next(f for f in r.findings if f.key == "gap")
    assert gap.level == "warn" and "overfitting" in gap.verdict


def test_plateau_is_detected_and_a_falling_loss_is_not():
    flat = synthetic([(i * 100, 2.0, 2.0 + (0.002 if i % 2 else -0.002)) for i in range(1, 13)])
    assert doctor.diagnose(flat).trend["plateau"] is True
    falling = synthetic([(i * 100, 3.0 / i ** 0.3, 3.0 / i ** 0.3) for i in range(1, 13)])
    r = doctor.diagnose(falling)
    assert r.trend["plateau"] is False and r.trend["per_1000"] < 0


def test_run_with_timestamps_splits_wall_time_into_training_evals_and_pauses(tmp_path):
    """A metrics.jsonl: 10 ms steps, a 2 s eval at iter 10, a 5 s pause at iter 15."""
    run = tmp_path / "run"
    run.mkdir()
    t = 1000.0
    with MetricsWriter(run / "metrics.jsonl") as w:
        def put(kind, it, **kw):
            w.write({**protocol.event(kind, it, **kw), "t": t})
        put("hello", 0, version=1, config={"max_iters": 40, "eval_interval": 10, "gradient_accumulation_steps": 1,
                                           "batch_size": 4, "block_size": 16, "n_layer": 2, "n_embd": 32,
                                           "n_head": 2, "vocab_size": 65},
            params={"total": 30000, "nanogpt": 29000, "non_embedding": 25000}, device="cpu",
            peak_flops=1e11, tokens_per_iter=64, start_iter=0, max_iters=40)
        t += 1.0                                   # start-up
        for i in range(20):
            if i == 10:
                t += 2.0                           # the eval
                put("eval", i, train_loss=2.0, val_loss=2.1, best_val_loss=2.1)
            if i == 15:
                t += 5.0                           # a pause
            t += 0.010
            put("step", i, loss=2.5, lr=1e-3, dt_ms=10.0, tokens_per_s=6400.0, mfu=0.2, grad_norm=1.0,
                tokens=(i + 1) * 64)
    r = doctor.diagnose(load_run(run))
    tm = r.timing
    assert tm.method == "timestamps"
    assert tm.duration_s == pytest.approx(1.0 + 2.0 + 5.0 + 0.2, abs=0.01)
    assert tm.eval_overhead_s == pytest.approx(2.0, abs=0.01) and tm.evals == 1
    assert tm.paused_s == pytest.approx(5.0, abs=0.01)
    assert tm.eval_overhead == pytest.approx(2.0 / 8.2, rel=0.01)
    assert tm.eta_s == pytest.approx(21 * 0.010 + 3 * 2.0, rel=0.01)   # iters 20..40, evals at 20, 30, 40
    assert r.params["nanogpt"] == 29000 and r.tokens["seen"] == 20 * 64
    assert r.mfu["reported_mean"] == pytest.approx(0.2)


# ---------------------------------------------------------------- MFU per GPU

PEAK_4070 = 58.3e12      # RTX 4070, bfloat16 dense


def engine_metrics(run: Path, sessions: list[tuple[int, int, int | None]], mfu: float = 0.29) -> list[float]:
    """A metrics.jsonl as the engine writes it (hello per process start, a step per iteration),
    for nanoGPT's 124M on an RTX 4070; sessions are (start_iter, end_iter, world_size or None for
    an engine too old to say). Each step's mfu is computed as trainer.py does: FLOPs of one rank's
    micro-batches / dt / peak. Returns those values after warm-up, the engine's own figures."""
    cfg = C.build({"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "batch_size": 12,
                   "gradient_accumulation_steps": 40, "vocab_size": 50304, "max_iters": 200,
                   "eval_interval": 25, "device": "cuda", "dtype": "bfloat16"})
    total, nano, non_emb = sizing.count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, 50304, cfg.bias)
    flops_per_token = 6 * nano + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
    tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size   # all ranks
    engine: list[float] = []
    t = 1000.0
    run.mkdir(exist_ok=True)
    with MetricsWriter(run / "metrics.jsonl") as w:
        def put(kind, it, **kw):
            w.write({**protocol.event(kind, it, **kw), "t": t})
        for start, end, world in sessions:
            extra = {} if world is None else {"world_size": world}
            put("hello", start, version=1, config=cfg.to_dict(), params={"total": total, "nanogpt": nano,
                "non_embedding": non_emb}, device="cuda:0", device_name="NVIDIA GeForce RTX 4070",
                dtype="bfloat16", peak_flops=PEAK_4070, tokens_per_iter=tokens_per_iter, start_iter=start,
                max_iters=cfg.max_iters, **extra)
            accum = cfg.gradient_accumulation_steps // (world or 1)           # this rank's micro-batches
            rank_flops = flops_per_token * cfg.block_size * cfg.batch_size * accum
            for i in range(start, end):
                if i % cfg.eval_interval == 0:
                    t += 30.0
                    put("eval", i, train_loss=3.0, val_loss=3.1, best_val_loss=3.1)
                dt = rank_flops / (mfu * PEAK_4070) * (1 + 0.1 * math.sin(1.7 * i)) * (4 if i == start else 1)
                t += dt
                step_mfu = rank_flops / dt / PEAK_4070
                put("step", i, loss=3.0, lr=6e-4, dt_ms=dt * 1000, tokens_per_s=tokens_per_iter / dt,
                    mfu=step_mfu, grad_norm=1.0, tokens=(i + 1) * tokens_per_iter)
                if i >= start + doctor.WARMUP:
                    engine.append(step_mfu)
    return engine


def test_mfu_of_a_two_process_run_is_per_gpu_and_agrees_with_the_engine(tmp_path, capsys):
    engine = engine_metrics(tmp_path / "run", [(0, 80, 2)])
    r = doctor.diagnose(load_run(tmp_path / "run"))
    assert r.mfu["world_size"] == 2
    assert r.mfu["reported_mean"] == pytest.approx(statistics.fmean(engine), abs=1e-5)
    assert r.mfu["mfu"] == pytest.approx(statistics.fmean(engine), rel=0.10)   # not twice it
    assert r.mfu["mfu"] == pytest.approx(0.29, rel=0.02)
    mfu_line = next(f for f in r.findings if f.key == "mfu").lines[-1]
    assert "per GPU (2 processes)" in mfu_line
    # the same through the CLI, and with the GPU named by hand
    assert cli.main(["doctor", str(tmp_path / "run"), "--json", "--device", "RTX 4070"]) == 0
    assert json.loads(capsys.readouterr().out)["mfu"]["mfu"] == pytest.approx(r.mfu["mfu"], rel=1e-4)


@pytest.mark.parametrize("world", [1, None])
def test_mfu_of_a_single_process_run_is_unchanged(tmp_path, world):
    engine = engine_metrics(tmp_path / "run", [(0, 80, world)])
    h = load_run(tmp_path / "run")
    r = doctor.diagnose(h)
    # global FLOPs per iteration over the mean steady step time (warm-up and evals excluded)
    cfg = h.train_config()
    fpi = (6 * r.params["nanogpt"] + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size) * h.tokens_per_iter
    assert r.mfu["world_size"] == 1 and r.mfu["flops_per_iter"] == fpi
    assert r.mfu["mfu"] == pytest.approx(fpi / (r.timing.mean_iter_ms / 1000) / PEAK_4070, rel=1e-4)
    assert r.mfu["mfu"] == pytest.approx(statistics.fmean(engine), rel=0.10)


def test_mfu_of_a_run_resumed_on_fewer_processes_weighs_each_session(tmp_path):
    engine = engine_metrics(tmp_path / "run", [(0, 50, 2), (50, 100, 1)])
    r = doctor.diagnose(load_run(tmp_path / "run"))
    assert r.mfu["world_size"] == 1                  # the last session's
    assert r.mfu["mfu"] == pytest.approx(statistics.fmean(engine), rel=0.10)


OOM_TRACEBACK = (FIXTURES.parent / "tracebacks" / "cuda_oom.txt").read_text(encoding="utf-8")


def test_a_log_that_died_out_of_memory_says_so_first_and_what_to_change(tmp_path, capsys):
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("iter 300:"))
    log = tmp_path / "oom.txt"
    log.write_text("\n".join(lines[:cut + 1]) + "\n" + OOM_TRACEBACK)
    assert cli.main(["doctor", str(log)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].startswith("ended         at iter 300: torch.OutOfMemoryError: CUDA out of memory.")
    assert text[2].startswith("              [WARN] out of memory: lower batch_size and raise gradient_accumulation_steps")
    assert not any("error event" in line or "stray" in line for line in text)   # said once, and no stray lines
    assert cli.main(["doctor", str(log), "--until", "200", "--json"]) == 0        # as it stood before: no error
    assert "ended" not in [f["key"] for f in json.loads(capsys.readouterr().out)["findings"]]
    # it died before its first iteration: the log has nothing else to show, and the doctor still says why
    header = [line for line in lines[:cut] if not line.startswith(("iter ", "step "))]
    (tmp_path / "oom0.txt").write_text("\n".join(header) + "\n" + OOM_TRACEBACK)
    assert cli.main(["doctor", str(tmp_path / "oom0.txt"), "--json"]) == 0
    ended = json.loads(capsys.readouterr().out)["findings"][0]
    assert (ended["key"], ended["level"]) == ("ended", "warn")
    assert ended["lines"][0].startswith("at iter 0: torch.OutOfMemoryError")


def test_a_gpttui_run_that_failed_says_its_error_first_and_a_refused_command_stays_data(tmp_path, capsys):
    def run_dir(name: str, final: str, error: dict) -> Path:
        d = tmp_path / name
        d.mkdir()
        with MetricsWriter(d / "metrics.jsonl") as w:
            w.write({**protocol.event("hello", 0, version=1, config={"max_iters": 100}, device="cuda:0", params={},
                                      peak_flops=1e14, tokens_per_iter=64, start_iter=0, max_iters=100), "t": 1.0})
            for i in range(20):
                w.write({**protocol.event("step", i, loss=4.0 - 0.01 * i, lr=6e-4, dt_ms=50.0, tokens_per_s=1280.0,
                                          mfu=None, grad_norm=None), "t": 2.0 + 0.05 * i})
            w.write({**protocol.event("error", 19, **error), "t": 3.0})
            w.write({**protocol.event("state", 19, state=final), "t": 3.1})
        return d
    message = ("out of GPU memory at iter 19: lower batch_size (raise gradient_accumulation_steps to keep "
               "tokens/iter) or block_size")   # the engine's words (engine/trainer.py)
    assert cli.main(["doctor", str(run_dir("failed", "failed", {"message": message}))]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1] == f"ended         at iter 19: {message}" and "[WARN] out of memory" in text[2]
    assert not any("error event" in line for line in text)
    refused = {"message": "command refused: n_layer changes the model's shape", "refused": True}
    assert cli.main(["doctor", str(run_dir("refused", "finished", refused))]) == 0
    text = capsys.readouterr().out
    assert "ended " not in text and "1 error event(s); last: command refused" in text


def test_a_resumed_nanogpt_log_without_its_shape_is_judged_by_its_own_parameter_count(capsys):
    """`train.py --init_from=resume` with no shape flags (real nanoGPT, CPU): the model is the checkpoint's,
    which the log never echoes; nanoGPT's defaults (12 x 768) were judged instead, 85M parameters."""
    log = FIXTURES / "resumed_without_shape.txt"
    assert cli.main(["doctor", str(log), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["params"] == 100_000                                    # "number of parameters: 0.10M"
    assert r["tokens_per_param"] == pytest.approx(260 * 768 / 100_000, rel=0.05)
    params = next(f for f in r["findings"] if f["key"] == "params")
    assert params["level"] == "note" and "it resumed a checkpoint" in " ".join(params["lines"])
    # the FLOPs come from the log's own MFU, not from a shape it does not hold
    assert r["mfu"]["steady_vs_a100"] == pytest.approx(r["mfu"]["reported_mean"], rel=0.5)


def test_a_log_that_died_in_nanogpts_configurator_says_why_and_nothing_it_cannot_know(tmp_path, capsys):
    """`--min_lr=0` (an int for a float): configurator.py asserts the type and prints a bare
    AssertionError before any model exists; the doctor judged a model and tokens it made up."""
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines()
    overrides = lines[:next(i for i, line in enumerate(lines) if line.startswith("tokens per iteration"))]
    log = tmp_path / "minlr0.txt"
    log.write_text("\n".join(overrides) + "\n" + (FIXTURES.parent / "tracebacks" / "configurator_type.txt").read_text())
    assert cli.main(["doctor", str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("ended         at iter 0: AssertionError in nanoGPT's configurator.py: an override's "
                             "value is not of its default's type")
    assert "e.g. --min_lr=0 for a float: write 0.0" in out[1]
    assert len(out) == 3 and "parameters" not in "".join(out)


def test_an_eval_only_log_is_its_eval_not_an_untrained_run(tmp_path, capsys):
    """`--eval_only=True` (nanoGPT's eval_gpt2 configs): one eval, then exit. The doctor called it 0% of
    compute-optimal with no train/val gap and too little to forecast."""
    lines = (FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("step 0:"))
    log = tmp_path / "eval_only.txt"
    log.write_text("\n".join([*lines[:first], "Overriding: eval_only = True", lines[first]]) + "\n")
    assert cli.main(["doctor", str(log), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [f["key"] for f in findings] == ["params", "eval_only"]
    assert findings[1]["lines"] == [f"val loss {lines[first].split('val loss ')[1]}, train loss "
                                    f"{lines[first].split('train loss ')[1].split(',')[0]} at iter 0"]


def test_a_finished_run_is_not_forecast_where_its_last_eval_already_is(capsys):
    """A log that reached max_iters has its eval there: the doctor showed a 'forecast' of it (once
    outside the band it gave) and ticked it; it says the eval, and forecasts training on to twice."""
    log = FIXTURES / "train_log_shakespeare_char_cpu_cos700_f32.txt"
    last = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("step 700:")][0]
    assert cli.main(["doctor", str(log)]) == 0
    out = capsys.readouterr().out
    assert f"max_iters 700 reached: val {float(last.split('val loss ')[1]):.3f} at its last eval (iter 700)" in out
    assert "at iter 700 (max_iters)" not in out and "the fit puts val at" not in out
    assert "at iter 1,400 (2x max_iters)" in out and "more from here to iter 1,400" in out
    assert cli.main(["doctor", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forecast"]["iter"] == 1400
    # cut before its end, max_iters is forecast as before
    assert cli.main(["doctor", str(log), "--until", "400"]) == 0
    assert "at iter 700 (max_iters)" in capsys.readouterr().out
