"""`gpttui sample`: nanoGPT sample.py's flags and output (and its text for its seed), bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_kit import nanogpt

from gpttui.data.metapkl import write_meta_pkl
from gpttui.data.tokenizer import CharTokenizer

torch.set_num_threads(1)
ARGS = dict(n_layer=2, n_head=2, n_embd=32, block_size=64, bias=True, vocab_size=65, dropout=0.0)
# run `gpttui sample` in a fresh interpreter and say whether it imported torch
CLI = ("import sys; from gpttui.cli import main; rc = main(sys.argv[1:]); "
       "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr); sys.exit(rc)")


@pytest.fixture
def nano_run(tmp_path, shakespeare_chars) -> tuple[Path, CharTokenizer]:
    """A shakespeare_char run as nanoGPT's own train.py leaves it (its model class, its keys)."""
    (tmp_path / "data" / "shakespeare_char").mkdir(parents=True)
    write_meta_pkl(tmp_path / "data" / "shakespeare_char" / "meta.pkl", shakespeare_chars)
    ng = nanogpt()
    torch.manual_seed(3)
    model = ng.GPT(ng.GPTConfig(**ARGS))
    (tmp_path / "out-shakespeare-char").mkdir()
    torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}, "optimizer": {},
                "model_args": ARGS, "iter_num": 5000, "best_val_loss": torch.tensor(1.47),
                "config": {"dataset": "shakespeare_char", "dtype": "bfloat16"}},
               tmp_path / "out-shakespeare-char" / "ckpt.pt")
    return tmp_path, CharTokenizer(shakespeare_chars)


def gpttui_sample(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, "sample", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def nanogpt_sample_py(run: Path, tok: CharTokenizer, start: str, num_samples: int, max_new_tokens: int,
                      seed: int) -> str:
    """What nanoGPT's sample.py prints (its steps, on the CPU)."""
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    torch.manual_seed(seed)
    ng = nanogpt()
    model = ng.GPT(ng.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    x = torch.tensor([tok.encode(start)])
    out = []
    with torch.no_grad():
        for _ in range(num_samples):
            y = model.generate(x, max_new_tokens, temperature=0.8, top_k=200)
            out.append(tok.decode(y[0].tolist()) + "\n---------------\n")
    return "".join(out)


def test_prints_what_nanogpt_sample_py_prints_in_both_flag_forms(nano_run):
    """Past block_size too: a 23-character prompt and 60 new characters on a 64-character block."""
    cwd, tok = nano_run
    (cwd / "prompt.txt").write_text("JULIET:\nO Romeo, Romeo!", encoding="utf-8")
    want = nanogpt_sample_py(cwd / "out-shakespeare-char", tok, "JULIET:\nO Romeo, Romeo!", 2, 60, 42)
    a = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--start=FILE:prompt.txt", "--num_samples=2",
                      "--max_new_tokens=60", "--seed=42", "--device=cpu", "--compile=False")
    assert a.returncode == 0, a.stderr
    assert a.stdout == want
    assert "no torch" in a.stderr and "iter 5000" in a.stderr and "tokens/s" in a.stderr
    b = gpttui_sample(cwd, "--out_dir", "out-shakespeare-char", "--start", "FILE:prompt.txt", "--num_samples", "2",
                      "--max_new_tokens", "60", "--seed", "42", "--compile", "--top_k=None")
    # top_k=None keeps all 65 characters, as top_k=200 does: same text, whichever flag form
    assert b.returncode == 0 and b.stdout == want, b.stderr
    assert "--compile is not used" in b.stderr
    c = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--start=FILE:prompt.txt", "--num_samples=2",
                      "--max_new_tokens=60", "--seed=42", "--fast_past_block")
    # the opt-in refill: nanoGPT's text while the block holds the context, its own after
    assert c.returncode == 0 and c.stdout != want and c.stdout[:64] == want[:64], c.stderr


def test_bad_input_is_one_line_and_exit_2(nano_run):
    cwd, _ = nano_run
    r = gpttui_sample(cwd, "--out_dir=nowhere")
    assert r.returncode == 2 and "error: nowhere/ckpt.pt: no checkpoint there" in r.stderr and not r.stdout
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--start=héllo", "--num_samples=1")
    assert r.returncode == 2 and "error: prompt: characters not in the vocabulary: 'é'" in r.stderr
    (cwd / "junk.pt").write_bytes(b"\x00" * 100)
    r = gpttui_sample(cwd, "--ckpt=junk.pt", "--num_samples=1")
    assert r.returncode == 2 and "junk.pt: not a readable checkpoint" in r.stderr
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--temperature=hot")
    assert r.returncode == 2 and "--temperature: invalid float value: 'hot'" in r.stderr
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--top_p=0")
    assert r.returncode == 2 and "error: top_p: expected a number in (0, 1] (1 = off), got 0" in r.stderr


def test_a_nan_temperature_is_refused_naming_the_rule_and_the_value(nano_run):
    cwd, _ = nano_run
    for flag, said in (("--temperature=nan", "temperature: expected a finite number >= 0 (0 = greedy), got nan"),
                       ("--temperature=inf", "temperature: expected a finite number >= 0 (0 = greedy), got inf"),
                       ("--top_p=nan", "top_p: expected a number in (0, 1] (1 = off), got nan")):
        r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", flag)
        assert r.returncode == 2 and r.stderr.splitlines() == [f"error: {said}", "no torch"] and not r.stdout



def test_an_unknown_device_is_refused_input(nano_run):
    cwd, _ = nano_run
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--device=tpu")
    assert r.returncode == 2 and not r.stdout
    assert r.stderr.splitlines() == ["error: device: expected cpu, cuda, cuda:N, mps or auto; got 'tpu'", "no torch"]


def test_an_unknown_dtype_is_refused_naming_the_choices(nano_run):
    cwd, _ = nano_run
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--dtype=foo")
    assert r.returncode == 2 and not r.stdout
    assert r.stderr.splitlines() == ["error: dtype: expected one of auto, float32, bfloat16, float16; got 'foo'",
                                     "no torch"]


def test_a_data_dir_given_is_the_vocabulary_or_refused(nano_run):
    cwd, _ = nano_run
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--data_dir=nonexist", "--num_samples=1")
    assert r.returncode == 2 and not r.stdout
    assert r.stderr.splitlines() == [
        "error: data_dir: nonexist is not a directory (expected the one holding the vocabulary's meta.pkl)", "no torch"]
    (cwd / "empty").mkdir()   # no meta.pkl: data/shakespeare_char's must not stand in for it
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--data_dir=empty", "--num_samples=1")
    assert r.returncode == 2 and not r.stdout
    assert r.stderr.splitlines() == [
        "error: out-shakespeare-char/ckpt.pt: the model's vocab_size is 65 but data_dir empty has no meta.pkl "
        "(a character model needs its vocabulary's meta.pkl there)", "no torch"]
    r = gpttui_sample(cwd, "--out_dir=out-shakespeare-char", "--data_dir=data/shakespeare_char", "--num_samples=1",
                      "--max_new_tokens=5", "--device=cpu")
    assert r.returncode == 0 and r.stdout.endswith("---------------\n"), r.stderr
