"""The bundled demo: a character-level GPT on tiny Shakespeare that learns visibly within a
minute on a laptop CPU (nanoGPT's shakespeare_char recipe at its CPU scale), trained with Muon
on the blocks' matrices: bench/time_to_loss.py shows it reaching AdamW's loss in far fewer
iterations on this very recipe.

Its run directory is made under the current directory; the data (a few MB) goes into
RUN_DIR/data, prepared from the text shipped in the package on first use.
"""

from __future__ import annotations

from pathlib import Path

from gpttui.run import config as C

DIR_NAME = "gpttui-demo"
TEXT = Path(__file__).resolve().parents[1] / "assets" / "tinyshakespeare.txt"  # gpttui/assets
EVALS = 20   # the demo evaluates 20 times a run, whatever its length


def demo_config(run_dir: Path, world: int = 1) -> C.TrainConfig:
    """The demo's config for a job of `world` processes: one micro-batch each per iteration
    (gradient accumulation must divide among them, as in nanoGPT)."""
    run_dir = run_dir.resolve()
    return C.replace(
        C.DEFAULTS,
        out_dir=str(run_dir), data_dir=str(run_dir / "data"), dataset="shakespeare_char",
        wandb_run_name="gpttui-demo",
        n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
        gradient_accumulation_steps=world, bias=False,
        learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100, optimizer="muon",
        max_iters=5000, lr_decay_iters=5000,
        eval_interval=5000 // EVALS, eval_iters=20, log_interval=10,
        device="cpu", dtype="float32", compile=False,
        always_save_checkpoint=False, sample_on_checkpoint=True, sample_tokens=200,
    )


def follow_max_iters(values: dict) -> dict:
    """The demo's overrides with its cosine and evals fitted to a --max_iters given without them: the
    demo's lr then decays to the end and its forecast has evals from early on, as at its own length
    (a nanoGPT config's max_iters alone would leave lr_decay_iters where it was)."""
    if "max_iters" not in values:
        return values
    end = values["max_iters"]
    return {"lr_decay_iters": end, "eval_interval": max(1, end // EVALS), **values}


def data_ready(run_dir: Path) -> bool:
    d = run_dir / "data"
    return (d / "train.bin").is_file() and (d / "val.bin").is_file()
