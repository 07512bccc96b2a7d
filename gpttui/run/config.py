"""The training config: nanoGPT's knobs (the schema), reading them from files and `--key=value`
overrides, and validation.

nanoGPT `.py` config files are parsed with `ast`, never executed: literals, arithmetic, helper
names, tuple assignments and math's and time's pure members (`'ft-' + str(time.time())`, as in
nanoGPT's finetune config) are evaluated, nothing else (see _eval_node). What a config implies
(parameters, memory) is in sizing.py, its learning rate over time in schedule.py.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
import re
import time
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from gpttui.fs import atomic
from gpttui.run import layout, pretrained
from gpttui.run.schedule import wsd_decay_start

GROUPS = ("model", "data", "optimizer", "schedule", "system", "io")


def _f(default: Any, group: str, help: str) -> Any:
    return field(default=default, metadata={"group": group, "help": help})


@dataclass
class TrainConfig:
    """Every knob of nanoGPT's train.py with its name and default, plus gpttui's own."""

    # I/O
    out_dir: str = _f("out", "io", "run directory: config.toml, metrics.jsonl, ckpt.pt")
    eval_interval: int = _f(2000, "io", "evaluate (and maybe checkpoint) every N iterations")
    log_interval: int = _f(1, "io", "print a training line every N iterations")
    eval_iters: int = _f(200, "io", "batches averaged per split when evaluating")
    eval_only: bool = _f(False, "io", "evaluate once and exit")
    always_save_checkpoint: bool = _f(True, "io", "checkpoint at every eval, not only when val improves")
    init_from: str = _f("scratch", "io", "'scratch', 'resume' (from out_dir/ckpt.pt), 'gpt2', 'gpt2-medium', "
                        "'gpt2-large', 'gpt2-xl' (local Hugging Face weights) or a model.safetensors path")
    wandb_log: bool = _f(False, "io", "mirror the run to Weights & Biases as nanoGPT does (pip install "
                         "'gpttui[wandb]'; WANDB_MODE=offline works without a network)")
    wandb_project: str = _f("owt", "io", "W&B project")
    wandb_run_name: str = _f("gpt2", "io", "W&B run name")
    tensorboard_log: bool = _f(False, "io", "write TensorBoard event files live to out_dir/tensorboard "
                               "(pip install 'gpttui[tensorboard]')")
    keep_checkpoints: int = _f(1, "io", "keep the last K checkpoints (ckpt.pt plus ckpt_<iter>.pt), and the best")
    sample_on_checkpoint: bool = _f(False, "io", "write a short sample to samples.jsonl at every checkpoint")
    sample_prompt: str = _f("\n", "io", "prompt for the samples taken at checkpoints")
    sample_tokens: int = _f(100, "io", "new tokens in each checkpoint sample")
    on_ui_lost: str = _f("detach", "io", "when the UI that started the engine dies: 'detach' (checkpoint, "
                         "train on headless; `gpttui attach` reconnects) or 'stop' (checkpoint, exit)")
    # data
    dataset: str = _f("openwebtext", "data", "dataset name; data lives in data/<dataset> unless data_dir is set")
    data_dir: str = _f("", "data", "directory with train.bin / val.bin (default data/<dataset>)")
    gradient_accumulation_steps: int = _f(40, "data", "micro-batches per optimizer step (split across GPUs)")
    batch_size: int = _f(12, "data", "sequences per micro-batch")
    block_size: int = _f(1024, "data", "context length in tokens")
    # model
    n_layer: int = _f(12, "model", "transformer blocks")
    n_head: int = _f(12, "model", "attention heads (must divide n_embd)")
    n_embd: int = _f(768, "model", "embedding width")
    dropout: float = _f(0.0, "model", "dropout probability (0 for pretraining)")
    bias: bool = _f(False, "model", "biases in Linear and LayerNorm layers")
    vocab_size: int = _f(0, "model", "0: from the data's meta (else 50304, GPT-2 padded)")
    # optimizer
    learning_rate: float = _f(6e-4, "optimizer", "peak learning rate")
    weight_decay: float = _f(0.1, "optimizer", "AdamW weight decay on 2-D weights")
    beta1: float = _f(0.9, "optimizer", "AdamW beta1")
    beta2: float = _f(0.95, "optimizer", "AdamW beta2")
    grad_clip: float = _f(1.0, "optimizer", "clip gradient norm at this value (0 = off)")
    optimizer: str = _f("adamw", "optimizer", "'adamw' (nanoGPT's) or 'muon': Muon on the 2-D weights of the "
                        "transformer blocks (attention and MLP matrices), AdamW on the embeddings, lm_head "
                        "(tied to wte) and the 1-D gains/biases; nanoGPT's train.py can't resume a muon run")
    muon_lr: float = _f(0.02, "optimizer", "Muon's peak learning rate (the schedule scales it with learning_rate)")
    muon_momentum: float = _f(0.95, "optimizer", "Muon's (Nesterov) momentum")
    # schedule
    max_iters: int = _f(600000, "schedule", "total optimizer steps")
    decay_lr: bool = _f(True, "schedule", "decay the learning rate (else constant)")
    lr_schedule: str = _f("cosine", "schedule", "'cosine' (nanoGPT's) or 'wsd' (warmup-stable-decay)")
    warmup_iters: int = _f(2000, "schedule", "linear warmup steps")
    lr_decay_iters: int = _f(600000, "schedule", "cosine: decay ends here (~max_iters per Chinchilla)")
    min_lr: float = _f(6e-5, "schedule", "floor of the decay (~learning_rate/10)")
    decay_frac: float = _f(0.2, "schedule", "wsd: decay over this last fraction of max_iters")
    # system
    backend: str = _f("nccl", "system", "DDP backend: 'nccl' (GPU) or 'gloo' (CPU)")
    device: str = _f("cuda", "system", "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'")
    dtype: str = _f("auto", "system", "'float32', 'bfloat16', 'float16', or 'auto' (bf16 if supported, else fp16; fp32 on CPU)")
    compile: bool = _f(True, "system", "torch.compile the model (GPU only; skipped on CPU)")
    loss_impl: str = _f("plain", "system", "'plain' (all logits at once, as nanoGPT), 'chunked' (lm_head + "
                        "cross-entropy a slice at a time: a larger micro-batch fits, each step is slower; "
                        "bench/logits_memory.py) or 'auto' (chunked from a vocabulary of 8192 up)")
    seed: int = _f(1337, "system", "random seed (rank r uses seed + r)")
    threads: int = _f(0, "system", "CPU threads for torch (0 = auto, leaving room for the UI)")
    peak_flops: float = _f(0.0, "system", "device peak FLOP/s for MFU (0 = from the device table or measured)")

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else Path("data") / self.dataset

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in fields(TrainConfig)}
DEFAULTS = TrainConfig()

# Fields the engine can take while it runs (the `set` command).
LIVE_FIELDS = frozenset({
    "max_iters", "lr_decay_iters", "eval_interval", "log_interval", "eval_iters",
    "always_save_checkpoint", "grad_clip", "learning_rate", "min_lr", "warmup_iters",
    "decay_frac", "weight_decay", "keep_checkpoints", "sample_on_checkpoint", "on_ui_lost",
    "muon_lr", "muon_momentum",
})
# Fields a checkpoint fixes: changing them means a new run.
SHAPE_FIELDS = frozenset({"n_layer", "n_head", "n_embd", "bias", "vocab_size"})

DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|auto)$")
INIT_FROM = ("scratch", "resume", *pretrained.GPT2_SIZES)
CHOICES = {
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "backend": ("nccl", "gloo"),
    "lr_schedule": ("cosine", "wsd"),
    "on_ui_lost": ("detach", "stop"),
    "optimizer": ("adamw", "muon"),
    "loss_impl": ("plain", "chunked", "auto"),
}


class ConfigError(ValueError):
    """A config problem, already phrased as one line for the user."""


# ---------------------------------------------------------------- typing of values

def coerce(key: str, value: Any) -> Any:
    """Check (and widen int->float) a value for `key`; raise ConfigError if the type is wrong. Every
    value from a file, a flag or a live change passes here, so a float field is held finite here: an
    infinite rate (1e400 reads as inf) or NaN would only show as a NaN loss once training runs."""
    if key not in FIELDS:
        raise ConfigError(f"unknown config key {key!r}" + _suggest(key))
    want = type(getattr(DEFAULTS, key))
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:   # an int past any float
            raise ConfigError(f"{key}: must be a finite number, got {str(value)[:20]}... "
                              f"({len(str(value))} digits)") from None
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value}")
        return value
    if want is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # 1e6 written for an iteration count
    if type(value) is not want:
        raise ConfigError(f"{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
    return value


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, FIELDS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# What Python's parser (ast.parse, ast.literal_eval) raises on text that is no literal: a syntax
# error, a null byte (ValueError), a nesting too deep for it (RecursionError, or MemoryError from
# the parser's own stack, not the machine's memory). nanogpt_log.py reads configs echoed in logs with it.
UNPARSABLE = (ValueError, SyntaxError, RecursionError, MemoryError)


def parse_value(key: str, text: str) -> Any:
    """Parse `--key=text` as nanoGPT's configurator does: a Python literal, else a string."""
    if key not in FIELDS:
        raise ConfigError(f"unknown config key {key!r}" + _suggest(key))
    want = type(getattr(DEFAULTS, key))
    if want is str:
        try:
            value = ast.literal_eval(text)
        except UNPARSABLE:
            return text
        return value if isinstance(value, str) else text
    if want is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = ast.literal_eval(text)
    except UNPARSABLE:
        if want is float and _is_float_text(text):   # inf, nan: refused by coerce's rule, as 1e400 is
            return coerce(key, float(text))
        raise ConfigError(f"{key}: expected {want.__name__}, got {text[:80]!r}") from None
    return coerce(key, value)


def _is_float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["--max_iters=2000", "--device=cpu"]` -> {"max_iters": 2000, "device": "cpu"}."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"expected --key=value, got {arg!r}")
        key, _, text = arg[2:].partition("=")
        out[key] = parse_value(key, text)
    return out


# ---------------------------------------------------------------- nanoGPT .py files

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
MAX_INT_BITS = 1024    # no config needs a larger number; bounds what a line of arithmetic can cost
MAX_STR = 10_000


@dataclass(frozen=True)
class _Module:
    """A module as a config sees it: only the pure functions and constants in `members`."""

    name: str
    members: dict[str, Any]


# nanoGPT's train.py has imported math and time when it exec()s a config, so a config may use them
# with or without its own `import` (the finetune config names its run 'ft-' + str(time.time())).
# Only these members are reachable, and only these modules can be imported; nothing is imported.
_MODULES = {
    "math": _Module("math", {name: getattr(math, name) for name in (
        "pi", "e", "tau", "sqrt", "isqrt", "exp", "log", "log2", "log10", "pow", "ceil", "floor",
        "trunc", "fabs", "gcd", "sin", "cos", "tan", "tanh")}),
    "time": _Module("time", {"time": time.time}),
}
# The builtins a config may call: pure conversions on the values above.
_BUILTINS: dict[str, Any] = {"str": str, "int": int, "float": float, "round": round, "min": min, "max": max,
                             "abs": abs}
_FUNCTIONS = (*_BUILTINS.values(), *(v for m in _MODULES.values() for v in m.members.values() if callable(v)))


def _bounded(value: Any) -> Any:
    """The value, unless it is past what any config needs (a few lines could otherwise double a
    number or a string until the machine's memory runs out)."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError("number too large")
    if isinstance(value, str) and len(value) > MAX_STR:
        raise ValueError("string too long")
    return value


def _eval_call(node: ast.Call, names: dict[str, Any]) -> Any:
    if node.keywords:
        raise ValueError(f"keyword arguments are not allowed: {ast.unparse(node)!r}")
    fn = _eval_node(node.func, names)
    if not any(fn is f for f in _FUNCTIONS):
        raise ValueError(f"{ast.unparse(node.func)!r} is not a function a config may call")
    args = [_eval_node(a, names) for a in node.args]
    try:
        return _bounded(fn(*args))
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{ast.unparse(node)}: {e}") from None


def _binop(op: ast.operator, a: Any, b: Any) -> Any:
    if isinstance(op, ast.Pow) and (isinstance(b, (int, float)) and abs(b) > 64
                                    or isinstance(a, int) and a.bit_length() > MAX_INT_BITS):
        raise ValueError("exponent too large")
    text, times = (a, b) if isinstance(a, str) else (b, a)
    if isinstance(op, ast.Mult) and isinstance(text, str) and type(times) is int and len(text) * times > MAX_STR:
        raise ValueError("string too long")
    if isinstance(op, ast.Mod) and isinstance(a, str):
        raise ValueError("string formatting is not allowed")
    try:
        return _bounded(_BINOPS[type(op)](a, b))
    except (TypeError, ZeroDivisionError) as e:
        raise ValueError(str(e)) from None
    except OverflowError:
        raise ValueError("result out of range") from None


def _eval_node(node: ast.AST, names: dict[str, Any]) -> Any:
    """Literals, arithmetic, tuples, names bound before (config keys start at their defaults, as in
    train.py), math's and time's members and the calls in _FUNCTIONS; nothing else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"{node.id!r} is not assigned before this line")
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval_node(node.operand, names)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval_node(node.left, names), _eval_node(node.right, names)
        try:
            return _binop(node.op, a, b)
        except ValueError as e:
            raise ValueError(f"{ast.unparse(node)[:80]}: {e}") from None
    if isinstance(node, ast.Tuple):   # `n_layer, n_head = 2, 2`
        return tuple(_eval_node(e, names) for e in node.elts)
    if isinstance(node, ast.Attribute):
        owner = _eval_node(node.value, names)
        if isinstance(owner, _Module):
            if node.attr in owner.members:
                return owner.members[node.attr]
            raise ValueError(f"{owner.name}.{node.attr} is not for configs; {owner.name}'s are: "
                             f"{', '.join(owner.members)}")
    if isinstance(node, ast.Call):
        return _eval_call(node, names)
    raise ValueError(f"only literal values, arithmetic and earlier names are allowed, not {ast.unparse(node)[:80]!r}")


def _unpack(target: ast.expr, value: Any) -> list[tuple[str, Any]]:
    """The (name, value) pairs an assignment to `target` binds; ValueError for what is no name."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, ast.Tuple):
        if not isinstance(value, tuple) or len(value) != len(target.elts):
            got = f"{len(value)} values" if isinstance(value, tuple) else repr(value)[:40]
            raise ValueError(f"expected {len(target.elts)} values to unpack, got {got}")
        return [pair for t, v in zip(target.elts, value, strict=True) for pair in _unpack(t, v)]
    raise ValueError("only names can be assigned")


def _imported(stmt: ast.Import | ast.ImportFrom) -> list[tuple[str, Any]]:
    """The names an import of math or time binds; ValueError for any other import."""
    if isinstance(stmt, ast.Import):
        if all(a.name in _MODULES for a in stmt.names):
            return [(a.asname or a.name, _MODULES[a.name]) for a in stmt.names]
    elif stmt.module in _MODULES and not stmt.level:
        members = _MODULES[stmt.module].members
        if all(a.name in members for a in stmt.names):
            return [(a.asname or a.name, members[a.name]) for a in stmt.names]
    raise ValueError(f"{ast.unparse(stmt)[:80]!r}: a config is read, never run: only "
                     f"{' and '.join(_MODULES)} (their functions and constants) can be imported")


def _names_read_after(body: list[ast.stmt]) -> list[set[str]]:
    """For each statement, the names the statements after it read."""
    after: list[set[str]] = []
    seen: set[str] = set()
    for stmt in reversed(body):
        after.append(set(seen))
        seen |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            seen.add(stmt.target.id)   # `x += 1` reads x
    return after[::-1]


def _bindings(stmt: ast.stmt, names: dict[str, Any], text: str) -> list[tuple[str, Any]]:
    """What one statement binds, evaluated; ConfigError (without the place) for a statement that is no
    assignment, ValueError for a value that can't be had without running code."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return _imported(stmt)
    if isinstance(stmt, ast.Assign):
        value = _eval_node(stmt.value, names)
        return [pair for t in stmt.targets for pair in _unpack(t, value)]
    if isinstance(stmt, ast.AnnAssign) and stmt.value:
        return _unpack(stmt.target, _eval_node(stmt.value, names))
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and type(stmt.op) in _BINOPS:
        current = _eval_node(ast.Name(stmt.target.id, ast.Load()), names)
        return [(stmt.target.id, _binop(stmt.op, current, _eval_node(stmt.value, names)))]
    kind = type(stmt).__name__.lower()
    raise ConfigError(f"only `name = value` lines are allowed; found {kind}: "
                      f"{ast.get_source_segment(text, stmt) or kind!r}"[:200])


def parse_nanogpt_py(text: str, path: str = "<config>") -> dict[str, Any]:
    """The config keys a nanoGPT config sets, as exec() in train.py would leave them, without
    executing anything. A name that is no config key is a helper when a later line reads it
    (`n_gpus = 8`, then `batch_size = 4 * n_gpus`); one nothing reads is refused as a likely typo."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: not a valid Python config file: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError):  # a null byte; nesting too deep to parse
        raise ConfigError(f"{path}: not a valid Python config file: nested too deeply or a null byte") from None
    body = [s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]  # docstrings
    names: dict[str, Any] = {**_BUILTINS, **_MODULES, **DEFAULTS.to_dict()}
    values: dict[str, Any] = {}
    for stmt, read_later in zip(body, _names_read_after(body), strict=True):
        where = f"{path}:{stmt.lineno}"
        try:
            bound = _bindings(stmt, names, text)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        except (ValueError, RecursionError) as e:
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
            label = f"{ast.unparse(target)}: " if target is not None else ""
            raise ConfigError(f"{where}: {label}{e}") from None
        for name, value in bound:
            if name in FIELDS:
                try:
                    value = values[name] = coerce(name, value)
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
            elif name not in read_later and not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                raise ConfigError(f"{where}: unknown config key {name!r}"
                                  + (_suggest(name) or " (nor a helper: no later line uses it)"))
            names[name] = value
    return values


# ---------------------------------------------------------------- TOML

def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML, one table per group, for RUN_DIR/config.toml."""
    doc: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    for name, f in FIELDS.items():
        doc[f.metadata["group"]][name] = getattr(cfg, name)
    return "# gpttui run config\n" + tomli_w.dumps(doc)


def parse_toml(text: str, path: str = "<config>") -> dict[str, Any]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    values: dict[str, Any] = {}
    for key, value in doc.items():
        items = value.items() if isinstance(value, dict) and key in GROUPS else [(key, value)]
        for k, v in items:
            try:
                values[k] = coerce(k, v)
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
    return values


# ---------------------------------------------------------------- loading

@dataclass
class LoadedConfig:
    """A resolved config and where it came from (its text feeds the size-promise check)."""

    config: TrainConfig
    source: str | None = None          # the file it was read from
    source_text: str = ""              # that file's text (comments promise sizes)
    overrides: dict[str, Any] = field(default_factory=dict)


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such config file")
    if p.is_dir():
        p = p / layout.CONFIG
        if not p.exists():
            raise ConfigError(f"{p.parent}: not a run directory (no config.toml)")
    try:
        # utf-8-sig: a byte-order mark (Notepad writes one) is read past, as Python reads its own source
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    if p.suffix == ".toml":
        return parse_toml(text, str(p))
    if p.suffix == ".py":
        return parse_nanogpt_py(text, str(p))
    raise ConfigError(f"{p}: expected a nanoGPT .py config, a .toml config or a run directory")


def build(values: dict[str, Any]) -> TrainConfig:
    for k, v in values.items():
        values[k] = coerce(k, v)
    return TrainConfig(**values)


def load(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> LoadedConfig:
    """Defaults, then the file (nanoGPT .py, TOML, or a run directory), then --key=value overrides."""
    values: dict[str, Any] = {}
    text, source = "", None
    if path is not None:
        values.update(read_config_file(path))
        p = Path(path)
        source = str(p / layout.CONFIG) if p.is_dir() else str(p)
        text = Path(source).read_text(encoding="utf-8-sig")
    ov = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    values.update(ov)
    try:
        values = pretrained.shaped(values)  # init_from = 'gpt2...' or a path: the model's own shape
    except pretrained.PretrainedError:
        pass  # validate() says it where it matters; a run directory keeps the shape it was written with
    return LoadedConfig(build(values), source, text, ov)


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    return dataclasses.replace(cfg, **{k: coerce(k, v) for k, v in changes.items()})


def save(cfg: TrainConfig, path: str | Path) -> None:
    """Write the config as TOML, atomically."""
    atomic.write_text(path, to_toml(cfg))


# ---------------------------------------------------------------- validation

# A field that takes another's value (the demo's lr_decay_iters follows --max_iters; nanoGPT's configs
# write `lr_decay_iters = max_iters`): while the two are equal, the other's problem is its problem too.
FOLLOWS = {"lr_decay_iters": "max_iters"}


def validate(cfg: TrainConfig) -> list[str]:
    """Every problem, one line each: 'field: what is wrong'. Empty when the config is sound.

    Each problem is said once, at its root: a field holding the value of a refused field it follows
    (FOLLOWS) is not refused again, and a rule between fields (min_lr under learning_rate, n_embd
    divisible by n_head) is checked only on fields sound on their own."""
    errs: list[str] = []
    refused: set[str] = set()

    def refuse(name: str, why: str) -> None:
        refused.add(name)
        errs.append(f"{name}: {why}")

    for name in ("batch_size", "block_size", "n_layer", "n_head", "n_embd",
                 "gradient_accumulation_steps", "eval_interval", "log_interval", "eval_iters",
                 "keep_checkpoints", "sample_tokens"):
        if getattr(cfg, name) <= 0:
            refuse(name, f"must be a positive integer, got {getattr(cfg, name)}")
    for name in ("max_iters", "warmup_iters", "lr_decay_iters", "vocab_size", "threads"):
        leader = FOLLOWS.get(name)
        if getattr(cfg, name) < 0 and not (leader in refused and getattr(cfg, name) == getattr(cfg, leader)):
            refuse(name, f"must be >= 0, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.dropout < 1.0:
        refuse("dropout", f"must be in [0, 1), got {cfg.dropout}")
    if not cfg.learning_rate > 0:
        refuse("learning_rate", f"must be > 0, got {cfg.learning_rate}")
    if cfg.min_lr < 0:
        refuse("min_lr", f"must be >= 0, got {cfg.min_lr}")
    if not cfg.muon_lr > 0:
        refuse("muon_lr", f"must be > 0, got {cfg.muon_lr}")
    for name in ("beta1", "beta2", "muon_momentum"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            refuse(name, f"must be in [0, 1), got {getattr(cfg, name)}")
    for name in ("weight_decay", "grad_clip", "peak_flops"):
        if getattr(cfg, name) < 0:
            refuse(name, f"must be >= 0, got {getattr(cfg, name)}")
    wsd = cfg.decay_lr and cfg.lr_schedule == "wsd"
    if wsd and not 0.0 < cfg.decay_frac <= 1.0:
        refuse("decay_frac", f"must be in (0, 1], got {cfg.decay_frac}")
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            refuse(name, f"expected one of {', '.join(choices)}; got {getattr(cfg, name)!r}")
    if not DEVICE_RE.match(cfg.device):
        refuse("device", f"expected cpu, cuda, cuda:N, mps or auto; got {cfg.device!r}")
    if not cfg.out_dir:
        refuse("out_dir", "must not be empty")

    def sound(*names: str) -> bool:
        return not refused.intersection(names)

    if sound("n_embd", "n_head") and cfg.n_embd % cfg.n_head:
        errs.append(f"n_embd: {cfg.n_embd} is not divisible by n_head={cfg.n_head}")
    if sound("min_lr", "learning_rate") and cfg.decay_lr and cfg.learning_rate < cfg.min_lr:
        errs.append(f"min_lr: {cfg.min_lr} is above learning_rate={cfg.learning_rate}")  # (a constant rate never reaches it)
    if wsd and sound("decay_frac", "warmup_iters", "max_iters") and cfg.warmup_iters > wsd_decay_start(cfg):
        errs.append(f"warmup_iters: {cfg.warmup_iters} runs into the wsd decay, which starts at "
                    f"iter {int(wsd_decay_start(cfg))}")
    if cfg.init_from not in INIT_FROM and not pretrained.is_path(cfg.init_from):
        errs.append(f"init_from: expected one of {', '.join(INIT_FROM)} or a path to a Hugging Face "
                    f"model.safetensors; got {cfg.init_from!r}")
    elif pretrained.is_pretrained(cfg.init_from) and sound("block_size"):
        try:  # a path: the weights, and the config.json beside them
            if error := pretrained.block_error(cfg.init_from, cfg.block_size):
                errs.append(error)
        except pretrained.PretrainedError as e:
            errs.append(str(e))
    return errs


def check(cfg: TrainConfig) -> None:
    errs = validate(cfg)
    if errs:
        raise ConfigError("\n".join(errs))

