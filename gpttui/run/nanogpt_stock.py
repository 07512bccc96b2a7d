"""The values of nanoGPT's stock configs (karpathy/nanoGPT config/*.py), so a log that says
`Overriding config with config/train_shakespeare_char.py:` is read whole even where the echo of
the file was lost. The eval_gpt2* and finetune configs start from OpenAI's GPT-2 weights
(`init_from = 'gpt2...'` is left out): their shapes are given here as nanoGPT's from_pretrained
sets them (GPT-2's 50257-token vocabulary, biases on): run/pretrained.py's model_shape."""

from __future__ import annotations

from typing import Any

from gpttui.run.pretrained import model_shape


def _eval(name: str) -> dict[str, Any]:
    return dict(model_shape(name), batch_size=8, eval_iters=500, eval_only=True, wandb_log=False)


STOCK_CONFIGS: dict[str, dict[str, Any]] = {
    "train_shakespeare_char": dict(
        out_dir="out-shakespeare-char", eval_interval=250, eval_iters=200, log_interval=10,
        always_save_checkpoint=False, wandb_log=False, wandb_project="shakespeare-char",
        wandb_run_name="mini-gpt", dataset="shakespeare_char", gradient_accumulation_steps=1,
        batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2,
        learning_rate=1e-3, max_iters=5000, lr_decay_iters=5000, min_lr=1e-4, beta2=0.99,
        warmup_iters=100),
    "train_gpt2": dict(
        wandb_log=True, wandb_project="owt", wandb_run_name="gpt2-124M", batch_size=12,
        block_size=1024, gradient_accumulation_steps=5 * 8, max_iters=600000, lr_decay_iters=600000,
        eval_interval=1000, eval_iters=200, log_interval=10, weight_decay=1e-1),
    "finetune_shakespeare": dict(
        model_shape("gpt2-xl"), out_dir="out-shakespeare", eval_interval=5, eval_iters=40, wandb_log=False,
        wandb_project="shakespeare", dataset="shakespeare", always_save_checkpoint=False, batch_size=1,
        gradient_accumulation_steps=32, max_iters=20, learning_rate=3e-5, decay_lr=False),
    "eval_gpt2": _eval("gpt2"),
    "eval_gpt2_medium": _eval("gpt2-medium"),
    "eval_gpt2_large": _eval("gpt2-large"),
    "eval_gpt2_xl": _eval("gpt2-xl"),
}
