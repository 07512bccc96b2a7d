from pathlib import Path

import pytest

from gpttui.cli import main
from gpttui.run import config as C

FIX = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
SEED = FIX / "train_fineweb.py"


def seed_text() -> str:
    return SEED.read_text()


def test_seed_config_reports_nanogpts_parameter_count(tmp_path, capsys):
    f = tmp_path / "train_fineweb.py"
    f.write_text(seed_text())
    assert main(["config", str(f)]) == 0
    out = capsys.readouterr().out
    assert "number of parameters: 123.59M" in out
    assert "tokens per iteration will be: 524,288" in out


def test_narrow_seed_config_builds_40m_and_warns(tmp_path, capsys):
    f = tmp_path / "train_fineweb.py"
    f.write_text(seed_text())
    main(["config", str(f), "--n_embd=384"])
    out = capsys.readouterr().out
    assert "number of parameters: 40.56M" in out
    assert "promises ~125M parameters, but this config builds 40.56M" in out


def test_max_iters_changed_alone_warns_that_the_cosine_will_not_finish(capsys):
    """nanoGPT's shakespeare_char config with --max_iters=2000 keeps lr_decay_iters = 5000: the run
    would end two thirds of the way down its cosine. Said before it starts; the stock config is fine."""
    stock = str(FIX / "configs" / "train_shakespeare_char.py")
    assert main(["config", stock, "--max_iters=2000"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "warning: lr_decay_iters 5,000 is past max_iters 2,000: the cosine ends with 67% of its decay to come "
        "(set lr_decay_iters = max_iters)")
    for fine in ([], ["--max_iters=2000", "--lr_decay_iters=2000"], ["--max_iters=2000", "--decay_lr=False"],
                 ["--max_iters=4800"]):   # at 4,800 less than a tenth of the decay is left
        assert main(["config", stock, *fine]) == 0
        assert "warning" not in capsys.readouterr().out


def test_py_config_is_parsed_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.py"
    f.write_text(f"batch_size = 4\nopen({str(marker)!r}, 'w')\n")
    with pytest.raises(C.ConfigError, match=r"evil.py:2: only `name = value` lines"):
        C.load(f)
    assert not marker.exists()


def test_py_config_arithmetic_and_earlier_names(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("max_iters = 5000\nlr_decay_iters = max_iters  # same\ngradient_accumulation_steps = 5 * 8\n")
    cfg = C.load(f).config
    assert (cfg.lr_decay_iters, cfg.gradient_accumulation_steps) == (5000, 40)


def test_py_config_unknown_key_names_file_and_line(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("batch_size = 4\nn_layers = 6\n")
    with pytest.raises(C.ConfigError, match=r"c.py:2: unknown config key 'n_layers' \(did you mean 'n_layer'\?\)"):
        C.load(f)


@pytest.mark.parametrize("text,shown", [
    ("n_gpus = 8\nbatch_size = 4 * n_gpus\n", ["batch_size = 32"]),
    ("depth = 2; n_layer = depth; n_head = depth; n_embd = 32 * depth\n",
     ["n_layer = 2", "n_head = 2", "n_embd = 64"]),
    ("n_layer, n_head = 2, 2\n", ["n_layer = 2", "n_head = 2"]),
    ("import math\nn_embd = 192\nlearning_rate = 1e-3 * math.sqrt(768 / n_embd)\n", ["learning_rate = 0.002"]),
    ("from math import ceil\nmax_iters = ceil(5000 / 3)\nlr_decay_iters = max_iters\n", ["lr_decay_iters = 1667"]),
    ("lr_decay_iters = max_iters // 2\nbatch_size *= 2\n", ["lr_decay_iters = 300000", "batch_size = 24"]),
])
def test_py_config_helper_names_tuples_and_math_read_as_train_py_would(tmp_path, capsys, text, shown):
    """nanoGPT exec()s a config in train.py's globals: helper names, tuple assignments, math (which
    train.py has imported) and its own defaults all work there; here they are evaluated, not run."""
    f = tmp_path / "helper.py"
    f.write_text(text)
    assert main(["config", str(f)]) == 0
    out = [line.split("   (default")[0].strip() for line in capsys.readouterr().out.splitlines()]
    assert all(line in out for line in shown), out


def test_a_name_that_is_no_key_and_that_no_line_uses_is_refused_as_a_typo(tmp_path, capsys):
    f = tmp_path / "c.py"
    f.write_text("n_gpus = 8\nbatch_size = 4\n")
    assert main(["config", str(f)]) == 2
    assert capsys.readouterr().err == f"error: {f}:1: unknown config key 'n_gpus' (nor a helper: no later line uses it)\n"


@pytest.mark.parametrize("source,where", [
    ("--learning_rate=1e400", ""), ("--learning_rate=inf", ""), ("--learning_rate=" + "9" * 400, ""),
    ("c.py:learning_rate = 1e400", "c.py:1: "), ("c.py:learning_rate = float('nan')", "c.py:1: "),
    ("c.toml:learning_rate = inf", "c.toml: "),
], ids=["flag 1e400", "flag inf", "flag 400 digits", "py 1e400", "py nan", "toml inf"])
def test_a_float_field_must_be_finite_wherever_it_comes_from(tmp_path, capsys, source, where):
    """1e400 reads as inf in Python and TOML; a run on it would only show a NaN loss. One rule (coerce)
    refuses it from a flag, a .py or a TOML config alike, in one line, before any JSON is written."""
    if source.startswith("--"):
        args = [source]
    else:
        name, _, text = source.partition(":")
        (tmp_path / name).write_text(text + "\n")
        args, where = [str(tmp_path / name)], f"{tmp_path / name}{where.removeprefix(name)}"
    assert main(["config", *args, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {where}learning_rate: must be a finite number, got ")
    assert err.count("\n") == 1


def test_overrides_follow_nanogpt_typing():
    ov = C.parse_overrides(["--max_iters=2000", "--device=cpu", "--compile=False", "--learning_rate=1e-3", "--dropout=0"])
    assert ov == {"max_iters": 2000, "device": "cpu", "compile": False, "learning_rate": 1e-3, "dropout": 0.0}
    with pytest.raises(C.ConfigError, match="batch_size: expected int"):
        C.parse_overrides(["--batch_size=big"])
    with pytest.raises(C.ConfigError, match="bias: expected bool"):
        C.parse_overrides(["--bias=3"])


def test_validation_messages_one_per_problem():
    cfg = C.TrainConfig(n_embd=384, n_head=5, min_lr=1.0, learning_rate=0.1, device="tpu", batch_size=0)
    errs = C.validate(cfg)
    assert "n_embd: 384 is not divisible by n_head=5" in errs
    assert any(e.startswith("min_lr:") for e in errs)
    assert any(e.startswith("device:") for e in errs)
    assert any(e.startswith("batch_size:") for e in errs)
    assert C.validate(C.TrainConfig()) == []


@pytest.mark.parametrize("args,said", [
    (["--learning_rate=-1"], "learning_rate: must be > 0, got -1.0"),          # not min_lr above it too
    (["--n_embd=-4", "--n_head=3"], "n_embd: must be a positive integer, got -4"),   # not 'not divisible'
    (["--lr_schedule=wsd", "--max_iters=-1"], "max_iters: must be >= 0, got -1"),   # not warm-up into the decay
    (["FILE", "max_iters = -1\nlr_decay_iters = max_iters\n"], "max_iters: must be >= 0, got -1"),
])
def test_a_refused_field_is_said_once_not_again_through_the_fields_that_follow_it(tmp_path, capsys, args, said):
    if args[0] == "FILE":
        (tmp_path / "c.py").write_text(args[1])
        args = [str(tmp_path / "c.py")]
    assert main(["config", *args]) == 2
    assert capsys.readouterr().err == f"error: {said}\n"


def test_the_demos_lr_decay_iters_following_a_bad_max_iters_is_not_refused_apart(tmp_path, capsys, monkeypatch):
    """`gpttui launch demo --max_iters=-1`: the demo's cosine follows max_iters, so lr_decay_iters
    is -1 too; the user set max_iters, and only max_iters is named."""
    monkeypatch.chdir(tmp_path)
    assert main(["launch", "demo", "--max_iters=-1"]) == 2
    err = capsys.readouterr().err
    assert "max_iters: must be >= 0, got -1" in err and "lr_decay_iters" not in err
    assert C.validate(C.replace(C.DEFAULTS, max_iters=-1, lr_decay_iters=-2)) == [
        "max_iters: must be >= 0, got -1", "lr_decay_iters: must be >= 0, got -2"]   # a value of its own: said


def test_toml_round_trip(tmp_path):
    cfg = C.TrainConfig(n_layer=4, lr_schedule="wsd", device="cpu", sample_prompt="ROMEO:")
    C.save(cfg, tmp_path / "config.toml")
    assert C.load(tmp_path).config == cfg


def test_bare_launch_prepares_the_demo_from_the_bundled_text(tmp_path, monkeypatch):
    from gpttui.commands.launch import make_plan

    monkeypatch.chdir(tmp_path)
    plan = make_plan(None, [])
    assert plan.prepare is not None and plan.prepare.source.is_file()  # the text the demo learns from
    assert plan.prepare.source.read_text(encoding="utf-8").startswith("First Citizen:")


def test_a_config_saved_with_a_byte_order_mark_reads_as_python_reads_it(tmp_path, capsys):
    """Notepad (and PowerShell's Out-File -Encoding utf8) begin a UTF-8 file with a byte-order mark;
    Python runs such a file, and `gpttui config` once refused it: 'invalid non-printable character'."""
    marked = tmp_path / "train_fineweb.py"
    marked.write_bytes(b"\xef\xbb\xbf" + seed_text().encode("utf-8"))
    assert main(["config", str(marked)]) == 0
    out = capsys.readouterr().out
    assert "number of parameters: 123.59M" in out and "tokens per iteration will be: 524,288" in out
    toml = tmp_path / "config.toml"
    toml.write_bytes(b"\xef\xbb\xbf" + b"n_layer = 3\nlearning_rate = 0.002\n")
    assert (C.load(toml).config.n_layer, C.load(toml).config.learning_rate) == (3, 0.002)
