"""What a config implies without building the model: parameters, tokens, FLOPs, training memory,
and whether the sizes its names and comments promise ("~125M") are the size it builds.

Pure arithmetic over nanoGPT's architecture (no torch); tests/test_engine.py checks the parameter
count against the real model.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gpttui.run.config import ConfigError
from gpttui.run.schedule import schedule_warnings
from gpttui.run.units import human_count

GPT2_PADDED_VOCAB = 50304


class Sizable(Protocol):
    """The TrainConfig fields sizing reads."""

    n_layer: int
    n_embd: int
    block_size: int
    bias: bool
    vocab_size: int               # 0: from the data's meta
    batch_size: int
    gradient_accumulation_steps: int
    max_iters: int
    eval_iters: int
    dtype: str
    device: str
    optimizer: str                # "adamw" or "muon": how many moment buffers each weight has
    out_dir: str                  # names that may promise a size
    wandb_run_name: str

    def resolved_data_dir(self) -> Path: ...


# ---------------------------------------------------------------- vocabulary

def data_vocab_size(data_dir: Path) -> int | None:
    """Vocabulary size from the data's meta.json (gpttui) or meta.pkl (nanoGPT); None without one, or
    for GPT-2 tokens. A meta that is there but can't be read is a ConfigError naming it: the model
    would otherwise be built for GPT-2's vocabulary, trained and sampled with the wrong one (nanoGPT's
    train.py fails on it too)."""
    mj = data_dir / "meta.json"
    if mj.exists():
        try:
            meta = json.loads(mj.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{mj}: cannot read: {e}") from None
        if not isinstance(meta, dict):
            raise ConfigError(f"{mj}: expected a JSON object with tokenizer and vocab_size")
        if meta.get("tokenizer") == "gpt2":
            return None  # GPT-2 ids: pad to 50304 as nanoGPT does for data without meta.pkl
        v = meta.get("vocab_size")
        if v is None:
            return None
        if type(v) is not int or v <= 0:
            raise ConfigError(f"{mj}: vocab_size is {str(v)[:40]!r}, not a positive integer")
        return v
    mp = data_dir / "meta.pkl"
    if mp.exists():
        from gpttui.data.metapkl import read_meta_pkl

        try:
            return read_meta_pkl(mp)["vocab_size"]
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return None


def effective_vocab_size(cfg: Sizable) -> int:
    if cfg.vocab_size:
        return cfg.vocab_size
    return data_vocab_size(cfg.resolved_data_dir()) or GPT2_PADDED_VOCAB


# ---------------------------------------------------------------- derived figures

@dataclass
class Derived:
    """Figures a config implies, computed without torch."""

    vocab_size: int
    params_total: int           # every parameter (lm_head tied to wte)
    params_nanogpt: int         # what nanoGPT prints: total without position embeddings
    params_non_embedding: int   # without token and position embeddings
    tokens_per_iter: int
    tokens_at_max_iters: int
    tokens_per_param: float     # at max_iters, per nanoGPT-counted parameter
    flops_per_token: float      # nanoGPT's 6N + 12*L*C*T, forward and backward
    flops_per_iter: float
    memory_bytes: dict[str, int]  # weights, grads, optimizer, activations, total
    tokens_per_eval: int        # both splits, eval_iters batches each (all an eval_only run reads)
    eval_memory_bytes: dict[str, int]  # weights, activations, total: an evaluation keeps no grads or optimizer state

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COMPUTE_OPTIMAL = 20.0   # tokens per parameter (Hoffmann et al., Chinchilla)
NEAR_OPTIMAL = 1.5       # within this factor of it, either way, a run is about compute-optimal


def compute_optimal_side(tokens_per_param: float) -> str:
    """'under', 'about' or 'over' compute-optimal: the one judgment the doctor and the config
    editor both make."""
    ratio = tokens_per_param / COMPUTE_OPTIMAL
    return "under" if ratio < 1 / NEAR_OPTIMAL else "over" if ratio > NEAR_OPTIMAL else "about"


def count_params(n_layer: int, n_embd: int, block_size: int, vocab_size: int, bias: bool) -> tuple[int, int, int]:
    """(total, without wpe, without wte and wpe) for nanoGPT's GPT."""
    C = n_embd
    ln = C + (C if bias else 0)
    per_layer = (2 * ln + C * 3 * C + (3 * C if bias else 0) + C * C + (C if bias else 0)
                 + C * 4 * C + (4 * C if bias else 0) + 4 * C * C + (C if bias else 0))
    wte, wpe = vocab_size * C, block_size * C
    total = wte + wpe + n_layer * per_layer + ln
    return total, total - wpe, total - wpe - wte


def derive(cfg: Sizable) -> Derived:
    vocab = effective_vocab_size(cfg)
    total, nano, non_emb = count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, vocab, cfg.bias)
    # nanoGPT divides gradient_accumulation_steps by the world size, so tokens/iter stay put
    tpi = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size
    fpt = 6 * nano + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
    return Derived(
        vocab_size=vocab,
        params_total=total,
        params_nanogpt=nano,
        params_non_embedding=non_emb,
        tokens_per_iter=tpi,
        tokens_at_max_iters=tpi * cfg.max_iters,
        tokens_per_param=tpi * cfg.max_iters / nano if nano else 0.0,
        flops_per_token=float(fpt),
        flops_per_iter=float(fpt) * tpi,
        memory_bytes=estimate_memory(cfg, total, vocab),
        tokens_per_eval=2 * cfg.eval_iters * cfg.batch_size * cfg.block_size,
        eval_memory_bytes=estimate_eval_memory(cfg, total, vocab),
    )


def bytes_per_activation(cfg: Sizable) -> int:
    return 4 if cfg.dtype == "float32" or cfg.device == "cpu" else 2


def muon_matrix_params(n_layer: int, n_embd: int) -> int:
    """The weights Muon takes (engine/optim.py): the 2-D weights inside the blocks (attention's
    qkv and projection, the MLP's two), without their biases."""
    return n_layer * 12 * n_embd * n_embd


@dataclass(frozen=True)
class MuonSplit:
    """Which parameters Muon takes and which AdamW keeps under `optimizer = "muon"`, counted from
    the config's shape by engine/optim.py's rule: the blocks' 2-D weights to Muon, the rest (the
    embeddings, lm_head tied to wte, the 1-D gains and biases) to AdamW."""

    muon_matrices: int
    muon_params: int
    adamw_vectors: int   # the 1-D gains and biases
    adamw_params: int

    def describe(self) -> str:
        """The split in the engine's words (its log line is "optimizer muon: " + this)."""
        return (f"Muon on the {self.muon_matrices} 2-D weights of the transformer blocks "
                f"({self.muon_params:,} parameters); AdamW on the embeddings, lm_head (tied to wte) and the "
                f"{self.adamw_vectors} 1-D gains/biases ({self.adamw_params:,} parameters)")


def muon_split(cfg: Sizable, params_total: int) -> MuonSplit:
    """The split of a model of `params_total` parameters (Derived.params_total): four matrices a
    block (attention's qkv and projection, the MLP's two); two LayerNorm gains a block and the final
    one, with bias=True also their biases and the four Linear biases of each block."""
    matrices = muon_matrix_params(cfg.n_layer, cfg.n_embd)
    vectors = cfg.n_layer * (8 if cfg.bias else 2) + (2 if cfg.bias else 1)
    return MuonSplit(4 * cfg.n_layer, matrices, vectors, params_total - matrices)


def optimizer_bytes(cfg: Sizable, params: int) -> int:
    """fp32 optimizer state: AdamW keeps two moments per weight; Muon one momentum buffer for its
    matrices, while AdamW keeps the embeddings, lm_head and 1-D gains/biases."""
    if cfg.optimizer == "muon":
        matrices = muon_matrix_params(cfg.n_layer, cfg.n_embd)
        return 4 * matrices + 8 * (params - matrices)
    return 8 * params


def optimizer_label(cfg: Sizable) -> str:
    """What holds the optimizer state, for the memory lines."""
    return "Muon+AdamW" if cfg.optimizer == "muon" else "AdamW"


def estimate_memory(cfg: Sizable, params: int, vocab: int) -> dict[str, int]:
    """Rough training memory: fp32 weights, grads and optimizer state, plus activations.

    Activations per layer follow Korthikanti et al. (34*B*T*C bytes in 16-bit, attention
    scores not stored thanks to flash/SDPA attention), plus the logits and their gradient.
    """
    B, T, C, L = cfg.batch_size, cfg.block_size, cfg.n_embd, cfg.n_layer
    act_scale = bytes_per_activation(cfg) / 2
    activations = int(L * 34 * B * T * C * act_scale + 2 * B * T * vocab * 4)
    mem = {
        "weights": 4 * params,
        "grads": 4 * params,
        "optimizer": optimizer_bytes(cfg, params),
        "activations": activations,
    }
    mem["total"] = sum(mem.values())
    return mem


def estimate_eval_memory(cfg: Sizable, params: int, vocab: int) -> dict[str, int]:
    """Rough memory of an evaluation: fp32 weights, nothing for grads or optimizer state (an eval
    runs without autograd and before any optimizer step), and activations that live only while a
    block runs (about 12*B*T*C values: qkv, attention output, the MLP's 4C hidden before and after
    GELU) plus the logits and their log-softmax in fp32."""
    B, T, C = cfg.batch_size, cfg.block_size, cfg.n_embd
    activations = int(12 * B * T * C * bytes_per_activation(cfg) + 2 * B * T * vocab * 4)
    return {"weights": 4 * params, "activations": activations, "total": 4 * params + activations}


# ---------------------------------------------------------------- size promises

_SIZE_RE = re.compile(r"(?<![\w.])~?(\d+(?:\.\d+)?)\s*([MmBb])(?![a-zA-Z])")
_GPT2_NAMES = {"gpt2-xl": 1558e6, "gpt2-large": 774e6, "gpt2-medium": 350e6}


def _sizes_in(text: str) -> list[float]:
    return [float(n) * (1e6 if u in "Mm" else 1e9) for n, u in _SIZE_RE.findall(text)]


def promised_sizes(cfg: Sizable, source_text: str = "", source: str | None = None) -> list[tuple[str, float]]:
    """Parameter counts promised by names and comments: [(where, count), ...].

    Names (out_dir, wandb_run_name, the file name) count as promises; a comment counts only
    when it speaks of parameters or the model, so `# ~3B tokens seen` is not a size.
    """
    found: list[tuple[str, float]] = []
    names = [("out_dir", cfg.out_dir), ("wandb_run_name", cfg.wandb_run_name)]
    if source:
        names.append(("config file name", Path(source).name))
    for where, text in names:
        low = text.lower()
        gpt2 = [size for name, size in _GPT2_NAMES.items() if name in low]
        found += [(where, s) for s in (gpt2[:1] or _sizes_in(text))]
    for line_no, line in enumerate(source_text.splitlines(), 1):
        comment = line[line.index("#"):] if "#" in line else ""
        if re.search(r"param|model", comment, re.I) and not re.search(r"token", comment, re.I):
            found += [(f"comment on line {line_no}", s) for s in _sizes_in(comment)]
    return found


def size_mismatches(cfg: Sizable, source_text: str = "", source: str | None = None,
                    tolerance: float = 0.25) -> list[str]:
    """One warning per promise the config does not keep (more than `tolerance` off)."""
    built = derive(cfg).params_nanogpt
    out = []
    for where, size in promised_sizes(cfg, source_text, source):
        if abs(built - size) / size > tolerance:
            out.append(f"{where} promises ~{human_count(size, 0)} parameters, "
                       f"but this config builds {human_count(built)}")
    return out


def config_warnings(cfg: Any, source_text: str = "", source: str | None = None) -> list[str]:
    """What a config is warned of before it runs (gpttui config, train, launch and the editor alike):
    a size its names or comments promise and it does not build, and a schedule that would not do what
    its fields suggest (see schedule_warnings). An eval_only run follows no schedule: it trains nothing."""
    schedule = [] if getattr(cfg, "eval_only", False) else schedule_warnings(cfg)
    return [*size_mismatches(cfg, source_text, source), *schedule]
