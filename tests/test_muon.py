"""optimizer = "muon": Muon on the blocks' matrices and AdamW on the rest; the log says which;
the schedule and a live `set` reach both; checkpoints stay nanoGPT's model, carry both states
and the kind; a resumed run follows its curve; DDP keeps the ranks' weights identical."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from engine_kit import CHAR_ARGS, EngineProc, nanogpt, prepare_run, read_events, step_losses, tiny_config

from gpttui.engine import checkpoint as K
from gpttui.engine import optim
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import config as C
from gpttui.run import schedule


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(tmp_path):
    model = GPT(GPTConfig(**CHAR_ARGS))
    cfg = tiny_config(tmp_path, tmp_path / "run", optimizer="muon")
    lines: list[str] = []
    opt = optim.build(model, cfg, "cpu", lines.append)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = sorted(names[id(p)] for g in opt.muon.param_groups for p in g["params"])
    adamw = sorted(names[id(p)] for g in opt.adamw.param_groups for p in g["params"])
    assert muon == sorted(f"transformer.h.{i}.{m}.weight" for i in range(2)
                          for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert adamw == sorted(n for n in names.values() if n not in muon)
    assert "transformer.wte.weight" in adamw  # lm_head.weight is the same tensor (tied)
    assert lines == [optim.muon_summary(model)] and "Muon on the 8 2-D weights of the transformer blocks" in lines[0]


def test_schedule_and_live_set_reach_both_groups(tmp_path):
    model = GPT(GPTConfig(**CHAR_ARGS))
    cfg = tiny_config(tmp_path, tmp_path / "run", optimizer="muon", muon_lr=0.03, weight_decay=0.2)
    opt = optim.build(model, cfg, "cpu")
    lr = schedule.lr_at(cfg, 50)
    optim.set_lr(opt, cfg, lr)
    assert [g["lr"] for g in opt.adamw.param_groups] == [lr, lr]
    assert opt.muon.param_groups[0]["lr"] == pytest.approx(0.03 * lr / cfg.learning_rate)
    live = C.replace(cfg, weight_decay=0.05, muon_lr=0.01, muon_momentum=0.9)
    optim.apply_live(opt, live)
    optim.set_lr(opt, live, lr)
    assert opt.adamw.param_groups[0]["weight_decay"] == 0.05 and opt.adamw.param_groups[1]["weight_decay"] == 0.0
    group = opt.muon.param_groups[0]
    assert group["weight_decay"] == pytest.approx(optim.muon_weight_decay(live)) and group["weight_decay"] > 0
    assert group["momentum"] == 0.9 and group["lr"] == pytest.approx(0.01 * lr / cfg.learning_rate)


def test_a_muon_run_learns_and_its_checkpoint_is_nanogpts_model(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=40, eval_interval=20, optimizer="muon")
    eng = EngineProc(run)
    assert eng.finish(timeout=240) == 0, eng.stderr
    evals = read_events(run, "eval")
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5
    assert "optimizer muon: Muon on the 8 2-D weights of the transformer blocks" in (run / "engine.log").read_text()
    ckpt = K.load(run / "ckpt.pt")
    assert ckpt["optimizer_kind"] == "muon" and set(ckpt["optimizer"]) == {"adamw", "muon"}
    theirs = nanogpt()  # nanoGPT's own model takes the weights (its sample.py loads them so)
    model = theirs.GPT(theirs.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])


def test_a_stopped_muon_run_resumes_on_the_same_curve(char_data, tmp_path):
    straight = prepare_run(char_data, tmp_path / "straight", max_iters=40, optimizer="muon")
    assert EngineProc(straight).finish(timeout=240) == 0
    run = prepare_run(char_data, tmp_path / "stopped", max_iters=40, optimizer="muon")
    eng = EngineProc(run)
    eng.wait_step(12, timeout=240)
    eng.send({"cmd": "stop"})
    assert eng.finish(timeout=240) == 0, eng.stderr
    stopped_at = K.load(run / "ckpt.pt")["iter_num"]
    assert 12 < stopped_at < 40
    assert EngineProc(run, "--init_from=resume").finish(timeout=240) == 0
    a, b = step_losses(straight), step_losses(run)
    assert sorted(b) == list(range(40))
    assert [b[i] for i in range(40)] == pytest.approx([a[i] for i in range(40)], rel=1e-5)


def test_resuming_with_the_other_optimizer_is_one_clear_error(char_data, tmp_path):
    run = prepare_run(char_data, tmp_path / "run", max_iters=10, eval_interval=10, optimizer="muon")
    assert EngineProc(run).finish(timeout=240) == 0
    eng = EngineProc(run, "--init_from=resume", "--optimizer=adamw", "--max_iters=20")
    assert eng.finish(timeout=240) == 2  # refused input at its start (README: 2)
    errors = [e for e in eng.events if e["type"] == "error"]
    assert errors[-1]["message"] == (f"{run / 'ckpt.pt'}: optimizer is 'muon' in the checkpoint but 'adamw' in "
                                     f"the config; resume with --optimizer=muon (or start a new run to switch)")
    # the refused start is not part of the run: its record and its config are as the last engine left them
    assert read_events(run, "state")[-1]["state"] == "finished" and not read_events(run, "error")
    assert C.load(run).config.optimizer == "muon" and C.load(run).config.max_iters == 10


DDP_SCRIPT = textwrap.dedent("""
    import torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from gpttui.engine import optim
    from gpttui.engine.model import GPT, GPTConfig
    from gpttui.run import config as C
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # the same initial weights; DDP would broadcast rank 0's anyway
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65))
    opt = optim.build(model, C.build({"optimizer": "muon"}), "cpu")
    ddp = DDP(model)
    torch.manual_seed(100 + rank)  # each rank its own batches
    for _ in range(3):
        x = torch.randint(0, 65, (4, 16))
        _, loss = ddp(x, x.roll(1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    both = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(both, flat)
    if rank == 0:
        print("max difference", (both[0] - both[1]).abs().max().item(), flush=True)
    dist.destroy_process_group()
    # ended as the engine ends its ranks (engine/__main__.py): gloo's threads torn down in the
    # interpreter's exit abort now and then ("terminate called without an active exception")
    import os
    os._exit(0)
""")


def test_ddp_ranks_stay_identical_under_muon(tmp_path):
    script = tmp_path / "ddp_muon.py"
    script.write_text(DDP_SCRIPT)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(s for s in out.stdout.splitlines() if s.startswith("max difference"))
    assert line.split()[2] == "0.0"  # gradients were averaged before each rank's Muon step
