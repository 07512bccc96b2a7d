"""Every file of nanoGPT's config/ loads in `gpttui config` (tests/fixtures/nanogpt/configs, copied
byte-for-byte), with GPT-2's own sizes for `init_from = 'gpt2…'` and nothing executed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gpttui import cli
from gpttui.run import config as C

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "nanogpt" / "configs"
# what nanoGPT's from_pretrained prints ("number of parameters: ...M") for each GPT-2
GPT2_PRINTED = {"eval_gpt2.py": "123.65M", "eval_gpt2_medium.py": "353.77M",
                "eval_gpt2_large.py": "772.72M", "eval_gpt2_xl.py": "1555.97M", "finetune_shakespeare.py": "1555.97M"}


def test_the_fixture_holds_nanogpts_seven_configs():
    assert sorted(p.name for p in CONFIGS.glob("*.py")) == sorted(
        [*GPT2_PRINTED, "train_gpt2.py", "train_shakespeare_char.py"])


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_each_stock_config_loads_in_gpttui_config(name, capsys):
    assert cli.main(["config", str(CONFIGS / name)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "warning" not in out       # the sizes its comments promise are the sizes it builds
    if name in GPT2_PRINTED:
        assert f"number of parameters: {GPT2_PRINTED[name]}" in out and "vocab 50257" in out


def test_gpt2_sizes_are_gpt2s_whatever_the_file_says():
    cfg = C.load(CONFIGS / "eval_gpt2_xl.py").config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.bias, cfg.vocab_size) == (48, 25, 1600, 1024, True, 50257)
    assert (cfg.batch_size, cfg.eval_iters, cfg.eval_only) == (8, 500, True)   # the file's own values stay


def test_finetune_configs_time_stamped_run_name_is_understood_not_executed(capsys):
    before = time.time()
    cfg = C.load(CONFIGS / "finetune_shakespeare.py").config
    stamp = float(cfg.wandb_run_name.removeprefix("ft-"))
    assert cfg.wandb_run_name.startswith("ft-") and before <= stamp <= time.time()
    assert (cfg.out_dir, cfg.dataset, cfg.init_from, cfg.learning_rate, cfg.decay_lr) == (
        "out-shakespeare", "shakespeare", "gpt2-xl", 3e-5, False)
    assert cli.main(["config", str(CONFIGS / "finetune_shakespeare.py"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"] == []    # min_lr above a constant rate is no error


@pytest.mark.parametrize("text,why", [
    ("import os\nout_dir = os.getcwd()", "import os"),                    # only math and time can be
    ("from os import path", "from os import path"),
    ("import time\nout_dir = str(time.sleep(5))", "time.sleep"),
    ("import math\nn_layer = math.factorial(10**6)", "math.factorial"),
    ("out_dir = open('/etc/passwd').read()", "open"),
    ("out_dir = str(__import__('os').system('true'))", "__import__"),
    ("n_layer = (1).__class__", "__class__"),
    ("out_dir = 'x' + time.time()", "time.time"),
    ("wandb_run_name = str(1, 2, 3)", "str"),
    ("a = 2**64\n" + "a = a * a\n" * 40 + "n_layer = a", "number too large"),   # helpers can't take the memory
    ("s = 'x' * 9000\n" + "s = s + s\n" * 40 + "out_dir = s", "string too long"),
    ("learning_rate = 1e300 ** 2", "out of range"),
])
def test_other_code_is_refused_naming_the_line(tmp_path, text, why):
    f = tmp_path / "c.py"
    f.write_text(text)
    with pytest.raises(C.ConfigError) as e:
        C.load(f)
    assert str(e.value).startswith(f"{f}:") and why in str(e.value) and "\n" not in str(e.value)
