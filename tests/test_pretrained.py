"""`init_from = 'gpt2*'` / `--init_from=PATH`: a Hugging Face GPT-2 model.safetensors loads with
nanoGPT's from_pretrained mapping (Conv1D weights transposed), checked against GPT-2's forward
computed by hand from the file's own tensors; without local weights, one line says what to do."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gpttui.engine import pretrained
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import config as C
from gpttui.run import layout
from gpttui.run import pretrained as run_pretrained

safetensors_torch = pytest.importorskip("safetensors.torch", reason="the [safetensors] extra is not installed")

SHAPE = dict(n_layer=2, n_head=2, n_embd=16, vocab_size=97, n_positions=32)


def hf_gpt2(seed: int = 0, prefix: str = "", lm_head: bool = False) -> dict[str, torch.Tensor]:
    """A random GPT-2 in Hugging Face's layout: Conv1D weights are (in, out); the attention masks
    are stored as buffers, as GPT-2's own file has them."""
    g = torch.Generator().manual_seed(seed)
    C_, V, P = SHAPE["n_embd"], SHAPE["vocab_size"], SHAPE["n_positions"]

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    sd = {"wte.weight": r(V, C_), "wpe.weight": r(P, C_), "ln_f.weight": 1 + r(C_), "ln_f.bias": r(C_)}
    for i in range(SHAPE["n_layer"]):
        h = f"h.{i}."
        sd |= {h + "ln_1.weight": 1 + r(C_), h + "ln_1.bias": r(C_), h + "ln_2.weight": 1 + r(C_), h + "ln_2.bias": r(C_),
               h + "attn.c_attn.weight": r(C_, 3 * C_), h + "attn.c_attn.bias": r(3 * C_),
               h + "attn.c_proj.weight": r(C_, C_), h + "attn.c_proj.bias": r(C_),
               h + "mlp.c_fc.weight": r(C_, 4 * C_), h + "mlp.c_fc.bias": r(4 * C_),
               h + "mlp.c_proj.weight": r(4 * C_, C_), h + "mlp.c_proj.bias": r(C_),
               h + "attn.bias": torch.tril(torch.ones(1, 1, P, P))}
    sd = {prefix + k: v for k, v in sd.items()}
    if lm_head:
        sd["lm_head.weight"] = sd[prefix + "wte.weight"].clone()
    return sd


def write_hf(d: Path, sd: dict[str, torch.Tensor], config: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    safetensors_torch.save_file(sd, str(d / "model.safetensors"))
    if config:
        (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_ctx": SHAPE["n_positions"], **SHAPE}))
    return d


def gpt2_by_hand(sd: dict[str, torch.Tensor], idx: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """GPT-2's forward written out from the Hugging Face tensors (x @ W + b for Conv1D)."""
    w = {k.removeprefix(prefix): v for k, v in sd.items()}
    nh, (B, T) = SHAPE["n_head"], idx.shape
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], w[n + ".weight"], w[n + ".bias"], 1e-5)  # noqa: E731
    x = w["wte.weight"][idx] + w["wpe.weight"][:T]
    for i in range(SHAPE["n_layer"]):
        h = f"h.{i}."
        q, k, v = (ln(x, h + "ln_1") @ w[h + "attn.c_attn.weight"] + w[h + "attn.c_attn.bias"]).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, nh, -1).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + y @ w[h + "attn.c_proj.weight"] + w[h + "attn.c_proj.bias"]
        m = F.gelu(ln(x, h + "ln_2") @ w[h + "mlp.c_fc.weight"] + w[h + "mlp.c_fc.bias"])
        x = x + m @ w[h + "mlp.c_proj.weight"] + w[h + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ w["wte.weight"].T


def model_for(init_from: str, *overrides: str) -> GPT:
    cfg = C.load(None, [f"--init_from={init_from}", *overrides]).config
    assert C.validate(cfg) == []
    return GPT(GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                         bias=cfg.bias, vocab_size=cfg.vocab_size, dropout=cfg.dropout))


@pytest.mark.parametrize("prefix,lm_head", [("", False), ("transformer.", True)])
def test_hf_weights_give_gpt2s_logits(tmp_path, prefix, lm_head):
    sd = hf_gpt2(prefix=prefix, lm_head=lm_head)
    d = write_hf(tmp_path / "gpt2-tiny", sd)
    # the shape is the checkpoint's (config.json), whatever the config says; block_size is cropped
    cfg = C.load(None, [f"--init_from={d}", "--n_layer=7", "--block_size=12"]).config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.bias, cfg.block_size) == (2, 2, 16, 97, True, 12)
    model = model_for(str(d), "--block_size=12")
    assert pretrained.load_into(model, str(d)) == d / "model.safetensors"
    model.eval()
    idx = torch.randint(0, 97, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = model(idx, idx)
    expected = gpt2_by_hand(sd, idx, prefix)
    assert torch.allclose(logits, expected, atol=1e-5), (logits - expected).abs().max()
    # the file itself names the weights too: the .safetensors path works as well as its directory
    model2 = model_for(str(d / "model.safetensors"), "--block_size=12")
    pretrained.load_into(model2, str(d / "model.safetensors"))
    assert torch.equal(model2.state_dict()["transformer.h.1.mlp.c_fc.weight"], sd[prefix + "h.1.mlp.c_fc.weight"].t())


def test_weights_that_do_not_fit_are_one_line_naming_the_file(tmp_path):
    sd = hf_gpt2()
    sd["h.0.mlp.c_fc.weight"] = torch.zeros(16, 8)
    d = write_hf(tmp_path / "bad", sd)
    with pytest.raises(pretrained.PretrainedLoadError) as e:
        pretrained.load_into(model_for(str(d)), str(d))
    assert str(e.value).count("\n") == 0 and "model.safetensors" in str(e.value) and "h.0.mlp.c_fc.weight" in str(e.value)
    del sd["h.0.mlp.c_fc.weight"]
    write_hf(tmp_path / "short", sd)
    with pytest.raises(pretrained.PretrainedLoadError, match="transformer.h.0.mlp.c_fc.weight"):
        pretrained.load_into(model_for(str(tmp_path / "short")), str(tmp_path / "short"))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "model.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "garbage" / "config.json").write_text((d / "config.json").read_text())
    with pytest.raises(pretrained.PretrainedLoadError, match="cannot read"):
        pretrained.load_into(model_for(str(tmp_path / "garbage")), str(tmp_path / "garbage"))


def test_a_path_without_config_json_or_weights_is_a_config_error(tmp_path):
    write_hf(tmp_path / "noconfig", hf_gpt2(), config=False)
    errs = C.validate(C.load(None, [f"--init_from={tmp_path / 'noconfig'}"]).config)
    assert len(errs) == 1 and errs[0].startswith("init_from:") and "config.json" in errs[0]
    errs = C.validate(C.TrainConfig(init_from=str(tmp_path / "nothing" / "model.safetensors")))
    assert len(errs) == 1 and errs[0].startswith("init_from:") and "no such file" in errs[0]
    assert any("init_from" in e for e in C.validate(C.TrainConfig(init_from="gpt3")))


def test_gpt2_names_take_gpt2s_shape_and_find_the_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    cfg = C.load(None, ["--init_from=gpt2-medium", "--n_layer=2", "--dropout=0.1"]).config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.bias, cfg.dropout) == (24, 16, 1024, 50257, True, 0.1)
    assert C.validate(C.load(None, ["--init_from=gpt2", "--block_size=256"]).config) == []      # cropped
    errs = C.validate(C.load(None, ["--init_from=gpt2", "--block_size=2048"]).config)
    assert errs == ["block_size: 2048 is beyond the 1024 positions of 'gpt2'"]
    with pytest.raises(run_pretrained.PretrainedError) as e:
        run_pretrained.weights_file("gpt2")
    assert "\n" not in str(e.value) and "--init_from=" in str(e.value) and "huggingface.co" in str(e.value)
    # where nanoGPT's transformers download leaves it
    snap = tmp_path / "hf" / "hub" / "models--gpt2" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"")
    assert run_pretrained.weights_file("gpt2") == snap / "model.safetensors"


def test_training_from_gpt2_without_local_weights_says_how_in_one_line(tmp_path, char_data):
    cfg = tmp_path / "ft.toml"
    cfg.write_text(f'init_from = "gpt2"\ndata_dir = "{char_data}"\ndevice = "cpu"\ncompile = false\n'
                   f'block_size = 16\nbatch_size = 2\ngradient_accumulation_steps = 1\nmax_iters = 2\n'
                   f'out_dir = "{tmp_path / "out"}"\n')
    env = {"HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "gpttui", "train", str(cfg)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "no local weights for 'gpt2'" in errors[0] and "--init_from=" in errors[0]
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2 and not (tmp_path / "out").exists()     # said before anything is made


def test_training_from_local_weights_loads_them_and_trains(tmp_path, char_data):
    """End to end: `gpttui train` with init_from = PATH builds the file's shape, loads it, trains, saves."""
    sd = hf_gpt2(seed=3)
    d = write_hf(tmp_path / "w", sd)
    cfg = tmp_path / "ft.toml"
    cfg.write_text(f'init_from = "{d}"\ndata_dir = "{char_data}"\ndevice = "cpu"\ncompile = false\ndtype = "float32"\n'
                   f'block_size = 16\nbatch_size = 2\ngradient_accumulation_steps = 1\nmax_iters = 2\n'
                   f'eval_iters = 2\neval_interval = 1\nthreads = 1\nout_dir = "{tmp_path / "out"}"\n')
    proc = subprocess.run([sys.executable, "-m", "gpttui", "train", str(cfg)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert f"loading weights from {d / 'model.safetensors'}" in proc.stdout
    assert "number of parameters: 0.01M" in proc.stdout   # the file's shape: 2 x 16, vocab 97
    assert (tmp_path / "out" / layout.CKPT).exists()


def test_a_pretrained_start_never_replaces_a_run_without_force(tmp_path, char_data):
    from gpttui.run import directory

    d = write_hf(tmp_path / "w", hf_gpt2())
    run = tmp_path / "run"
    run.mkdir()
    (run / layout.CKPT).write_bytes(b"the old run's checkpoint")
    cfg = C.load(None, [f"--init_from={d}", f"--data_dir={char_data}", f"--out_dir={run}", "--block_size=16"]).config
    with pytest.raises(directory.RunDirError, match="already holds a run"):
        directory.prepare(cfg)
    assert (run / layout.CKPT).read_bytes() == b"the old run's checkpoint"


def test_a_run_started_from_weights_that_are_gone_still_loads_and_resumes(tmp_path, char_data):
    """The shape is written into the run's config.toml; the weights are needed only to start."""
    import shutil

    from gpttui.run import directory

    d = write_hf(tmp_path / "w", hf_gpt2())
    cfg = C.load(None, [f"--init_from={d}", f"--data_dir={char_data}", f"--out_dir={tmp_path / 'run'}",
                        "--block_size=16"]).config
    directory.prepare(cfg)
    shutil.rmtree(d)
    again = C.load(tmp_path / "run", ["--init_from=resume"]).config
    assert (again.n_layer, again.n_embd, again.vocab_size, again.bias, again.block_size) == (2, 16, 97, True, 16)
    assert C.validate(again) == []
    assert any("no such file" in e for e in C.validate(C.load(tmp_path / "run").config))   # a new start needs them


def test_a_fine_tune_stopped_before_its_first_checkpoint_starts_again_from_its_weights(tmp_path, char_data):
    """`gpttui launch RUN` (and r in the dashboard) on a run made from weights, with no ckpt.pt
    yet, loads those weights again: a random model in their place would silently be another run."""
    from gpttui.commands.launch import make_plan
    from gpttui.run import directory

    d = write_hf(tmp_path / "w", hf_gpt2())
    run = tmp_path / "run"
    cfg = C.load(None, [f"--init_from={d}", f"--data_dir={char_data}", f"--out_dir={run}", "--block_size=16"]).config
    directory.prepare(cfg)
    assert make_plan(str(run), []).engine_args[0] == f"--init_from={d}"
    (run / layout.CKPT).write_bytes(b"a checkpoint")
    assert make_plan(str(run), []).engine_args[0] == "--init_from=resume"
