"""Every override a nanoGPT log prints is read (quoted and unquoted text, booleans, numbers,
expressions, a stock config file), and the doctor follows them: the schedule its forecast names,
the dtype its MFU is against; `--config FILE` for a log without a header (doctor and open); the
trend, tokens-promise and eval-count judgments. The logs are the real fixture logs with the
header lines nanoGPT's configurator prints in front of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.analysis import doctor
from gpttui.analysis.opened_run import open_source
from gpttui.analysis.peaks import table_peak
from gpttui.commands.open import pair_configs
from gpttui.run import nanogpt_log
from gpttui.run.history import RunHistory, load_run

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOG_40M = FIXTURES / "train_log_fineweb_40m.txt"
LOG_124M = FIXTURES / "train_log_fineweb_124m.txt"
TPI = 524_288
# nanoGPT's configurator: print(f"Overriding: {key} = {attempt}") -- str(), so text is unquoted
HEADER = """\
Overriding: dtype = float32
Overriding: out_dir = /tmp/x
Overriding: dataset = shakespeare_char
Overriding: decay_lr = False
Overriding: compile = False
Overriding: learning_rate = 0.0006
Overriding: batch_size = 8
Overriding: gradient_accumulation_steps = 64
Overriding: wandb_run_name = 'quoted by gpttui train'
Overriding: max_iters = 4 * 5000
Overriding: my_own_knob = 3
tokens per iteration will be: 524,288
"""


def test_every_kind_of_override_is_read():
    log = nanogpt_log.parse(HEADER + LOG_40M.read_text(encoding="utf-8"))
    c = log.config
    assert c["dtype"] == "float32" and c["out_dir"] == "/tmp/x" and c["dataset"] == "shakespeare_char"
    assert c["decay_lr"] is False and c["compile"] is False
    assert c["learning_rate"] == 0.0006 and c["batch_size"] == 8
    assert c["wandb_run_name"] == "quoted by gpttui train"
    assert c["max_iters"] == 20000
    assert log.config_unknown == {"my_own_knob": "3"}


def test_decay_lr_false_makes_the_forecast_name_a_constant_schedule():
    h = RunHistory.from_nanogpt_text(HEADER + LOG_40M.read_text(encoding="utf-8"), "log")
    r = doctor.diagnose(h)
    assert r.forecast_note.startswith("constant lr (decay_lr = False")
    assert "cosine" not in r.forecast_note and "decay expected" not in r.forecast_note   # no decay, no gain from it
    # the same log with the lr decaying: a cosine, named with where it ends
    cos = RunHistory.from_nanogpt_text(HEADER.replace("decay_lr = False", "decay_lr = True")
                                       + LOG_40M.read_text(encoding="utf-8"), "log")
    assert doctor.diagnose(cos).forecast_note.startswith("cosine schedule (decay to iter 600,000")
    assert "the lr's full decay expected to take about 4% off the loss" in doctor.diagnose(cos).forecast_note


def test_a_float32_log_gets_mfu_against_the_float32_peak():
    h = RunHistory.from_nanogpt_text(HEADER + LOG_40M.read_text(encoding="utf-8"), "log")
    r = doctor.diagnose(h, device="RTX 4070")
    fp32, bf16 = table_peak("RTX 4070", "float32"), table_peak("RTX 4070", "bfloat16")
    assert fp32 and bf16 and fp32 != bf16
    assert r.mfu["device_peak_flops"] == fp32
    mfu_line = next(f for f in r.findings if f.key == "mfu").lines[-1]
    assert "(float32)" in mfu_line
    plain = doctor.diagnose(load_run(LOG_40M), device="RTX 4070")      # no dtype said: nanoGPT's bf16
    assert plain.mfu["device_peak_flops"] == bf16
    # without --device: nanoGPT's A100 constant is its bf16 peak; a float32 run is also put
    # against the A100's float32 (TF32) peak
    nodev = doctor.diagnose(h)
    assert nodev.mfu["steady_vs_a100_dtype"] == pytest.approx(
        nodev.mfu["steady_vs_a100"] * 312e12 / table_peak("A100", "float32"), rel=1e-3)
    assert "steady_vs_a100_dtype" not in doctor.diagnose(load_run(LOG_40M)).mfu


@pytest.mark.parametrize("echoed", [True, False])
def test_a_stock_config_file_is_known_with_or_without_its_echo(echoed):
    nano = "Overriding config with config/train_shakespeare_char.py:\n"
    if echoed:   # what nanoGPT prints: the file itself (here only two lines of it, as edited by a user)
        nano += "max_iters = 3000\nlr_decay_iters = 3000\n"
    nano += "Overriding: device = cpu\ntokens per iteration will be: 16,384\n"
    nano += "step 0: train loss 4.2874, val loss 4.2823\niter 0: loss 4.2654, time 100.0ms, mfu -100.00%\n"
    h = RunHistory.from_nanogpt_text(nano, "log")
    cfg = h.train_config()
    assert cfg is not None and cfg.device == "cpu"
    if echoed:
        assert cfg.max_iters == 3000 and cfg.n_layer == 12      # the echo, not the stock file: nanoGPT's defaults
    else:
        assert (cfg.max_iters, cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.dropout) == (5000, 6, 384, 256, 0.2)
        assert h.tokens_per_iter == 16_384


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "fineweb_40m.py"
    cfg.write_text("# the 40M run\nn_layer = 8\nn_head = 8\nn_embd = 512\nbatch_size = 8\n"
                   "gradient_accumulation_steps = 64\nblock_size = 1024\nmax_iters = 20000\n"
                   "lr_decay_iters = 20000\nwarmup_iters = 700\n", encoding="utf-8")
    return cfg


def test_doctor_config_flag_gives_a_headerless_log_its_tokens(tmp_path, capsys):
    assert cli.main(["doctor", str(LOG_40M), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["tokens_seen"] is None
    cfg = write_config(tmp_path)
    assert cli.main(["doctor", str(LOG_40M), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens_seen"] == 20001 * TPI and out["tokens_per_iter"] == TPI
    assert out["tokens_per_param"] == pytest.approx(20001 * TPI / out["params"], abs=0.01)
    assert out["max_iters"] == 20000
    assert "warm-up 700" in out["forecast_note"]
    assert cli.main(["doctor", str(LOG_40M), "--config", str(tmp_path / "nope.py")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --config: {tmp_path / 'nope.py'}: no such config file"


def test_open_config_pairs_with_logs_in_order_and_gives_the_tokens_axis(tmp_path):
    cfg = write_config(tmp_path)
    run = open_source(LOG_40M, 0, cfg)
    assert run.history.tokens_per_iter == TPI
    assert run.live.tokens == 20000 * TPI
    assert open_source(LOG_40M, 0).history.tokens_per_iter is None
    configs, problem = pair_configs([LOG_124M, tmp_path, LOG_40M], [str(cfg), str(cfg)])
    assert problem is None and configs == {LOG_124M: cfg, LOG_40M: cfg}
    _, problem = pair_configs([LOG_40M], [str(cfg), str(cfg)])
    assert problem.startswith("--config: 2 config(s) given for 1 log file(s)")


def test_a_fall_of_a_fifth_of_a_percent_per_1000_iterations_is_flat():
    r = doctor.diagnose(load_run(LOG_40M))
    trend = next(f for f in r.findings if f.key == "trend")
    assert -0.0025 < r.trend["relative_per_1000"] < -0.0015
    assert trend.verdict.startswith("flat") and "consider stopping or annealing" in trend.verdict


def test_loss_trend_and_forecast_count_the_same_evals():
    r = doctor.diagnose(load_run(LOG_40M))
    trend = next(f for f in r.findings if f.key == "trend").lines[0]
    fit = next(f for f in r.findings if f.key == "forecast").lines[-1]
    assert "of 41 evals" in trend and "of 41 evals" in fit      # the log has 41 'step N:' lines


def test_a_tokens_comment_is_checked_like_the_parameter_comment():
    r = doctor.diagnose(load_run(LOG_124M))
    tokens = next(f for f in r.findings if f.key == "tokens")
    assert tokens.level == "warn"
    assert "config/train_fineweb.py:22 promises ~3B tokens" in tokens.verdict and "6.29B" in tokens.verdict
    assert doctor.token_promises("max_iters = 600000  # this makes total number of tokens be 300B") == [(1, 300e9)]
    assert doctor.token_promises("# 1 batch_size * 32 grad_accum * 1024 tokens = 32,768 tokens/iter") == []


# nanoGPT's own train.py (karpathy/nanoGPT, unmodified) run on this CPU with the stock
# config/train_shakespeare_char.py and command-line overrides, stopped at iter 130 of 640
CPU_LOG = Path(__file__).resolve().parent / "fixtures" / "nanogpt_runs" / "train_log_shakespeare_char_cpu.txt"


def test_a_real_nanogpt_log_with_unquoted_overrides():
    h = load_run(CPU_LOG)
    cfg = h.train_config()
    assert (cfg.dtype, cfg.out_dir, cfg.device, cfg.compile) == ("float32", "out-cos", "cpu", False)
    assert (cfg.n_layer, cfg.n_embd, cfg.max_iters, cfg.beta2, cfg.min_lr) == (3, 96, 640, 0.99, 1e-4)
    assert h.config_unknown == {} and h.tokens_per_iter == 768
    r = doctor.diagnose(h, device="RTX 4070")
    assert r.forecast_note.startswith("cosine schedule (decay to iter 640, warm-up 20)")
    assert r.mfu["device_peak_flops"] == table_peak("RTX 4070", "float32")


def test_a_users_own_config_file_echoed_by_nanogpt_is_the_runs_config():
    # nanoGPT's train.py run with a config file of the user's own (not a stock one: only its echo
    # in the log says what it holds), a value line with a comment after it among them
    h = load_run(FIXTURES / "train_log_shakespeare_char_cpu_owncfg800.txt")
    cfg = h.train_config()
    assert (cfg.n_layer, cfg.n_embd, cfg.batch_size, cfg.block_size) == (3, 96, 16, 64)
    assert (cfg.max_iters, cfg.lr_decay_iters, cfg.warmup_iters, cfg.learning_rate) == (800, 500, 50, 3e-3)
    assert h.config_unknown == {} and h.tokens_per_iter == 40_960   # nanoGPT's default 40 micro-steps
    r = doctor.diagnose(h)
    assert r.forecast_note.startswith("cosine schedule (decay to iter 500, warm-up 50) from the config")
    assert r.tokens["seen"] == 801 * 40_960   # iterations 0 to 800


def test_an_echoed_config_with_helper_names_gives_the_shape_that_ran():
    """nanoGPT exec()s a config: helper names and tuple assignments are its own; read line by line, each
    helper was refused alone and the model became nanoGPT's defaults (85M beside the log's 0.10M)."""
    config = ("# helper variables, as nanoGPT allows\ndepth = 2\ndataset = 'shakespeare_char'\n"
              "n_layer = depth\nn_head, dropout = depth, 0.0\nn_embd = 32 * depth\nblock_size = 64\n"
              "batch_size = 12\nmax_iters = 100\nlr_decay_iters = max_iters\n")
    log = (f"Overriding config with cfg/helper2.py:\n{config}\nOverriding: device = cpu\n"
           "tokens per iteration will be: 30,720\nfound vocab_size = 65 (inside data/shakespeare_char/meta.pkl)\n"
           "number of parameters: 0.10M\n"
           "step 0: train loss 4.1822, val loss 4.1783\niter 0: loss 4.1859, time 695.02ms, mfu -100.00%\n")
    h = RunHistory.from_nanogpt_text(log)
    cfg = h.train_config()
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout, cfg.lr_decay_iters) == (2, 2, 64, 0.0, 100)
    assert h.config_unknown == {}
    r = doctor.diagnose(h)
    assert r.params["source"] == "config" and round(r.params["nanogpt"] / 1e6, 2) == 0.10
