"""The seed user's 124M run as the extend tests see it: its schedule and a power-law val loss."""

from gpttui.run import config as C
from gpttui.run.history import Eval

TPI = 524288
# the seed user's run: 12 layers, cosine to 12,000, lr 3e-4 -> 3e-5
SEED = C.replace(C.DEFAULTS, max_iters=12000, lr_decay_iters=12000, warmup_iters=500,
                 learning_rate=3e-4, min_lr=3e-5, eval_interval=500, gradient_accumulation_steps=64,
                 batch_size=8)


def law(it: int) -> float:
    """A val loss that falls as a power law of the iterations."""
    return 3.2 + 6.0 * it ** -0.35


# with a little eval noise (+-0.01, as a few hundred eval batches give)
EVALS = [Eval(i, None, None, law(i) + 0.01 * (-1) ** (i // 500)) for i in range(500, 6001, 500)]
