"""Preparing a run directory before the engine starts: pure Python, no torch.

`prepare` checks everything that can be checked without torch (the config, the data, whether
a run would be clobbered, whether a checkpoint fits the config that would resume it) and writes
RUN_DIR/config.toml atomically, so `gpttui train` and the UI fail fast with one clear line instead
of a traceback from the engine. It writes only while it holds the run's lock (RUN_DIR/engine.lock,
the engine's), so a start refused because an engine trains there changes no file of that run; a
directory it made for a start it then refused is removed again. A resume's changes are not
written here: the engine writes them into config.toml once it has accepted them (see
`engine_overrides`), so a resume the engine refuses leaves the run as it was.
"""

from __future__ import annotations

import pickle
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gpttui.fs import dirs
from gpttui.fs.lock import FileLock
from gpttui.fs.writable import check_writable
from gpttui.run import config as C
from gpttui.run import engine_state, layout, pretrained, sizing


class RunDirError(ValueError):
    """A problem with the run directory or its data, phrased as one line for the user."""


class RunDirLocked(RunDirError):
    """An engine trains in the run directory; the message names it and how to attach."""


@dataclass
class DataInfo:
    data_dir: Path
    train_tokens: int
    val_tokens: int
    vocab_size: int | None   # from meta.json / meta.pkl, if there


def check_data(cfg: C.TrainConfig) -> DataInfo:
    """The data directory holds train.bin and val.bin with more than block_size tokens each."""
    d = cfg.resolved_data_dir()
    if not d.is_dir():
        hint = "set data_dir, or dataset for data/<dataset>" if not cfg.data_dir else "check data_dir"
        raise RunDirError(f"{d}: data directory not found ({hint}; `gpttui prepare` makes one)")
    tokens = {}
    for split in ("train", "val"):
        p = d / f"{split}.bin"
        if not p.is_file():
            raise RunDirError(f"{p}: missing (expected uint16 token ids, as nanoGPT's prepare.py writes)")
        size = p.stat().st_size
        if size % 2:
            raise RunDirError(f"{p}: {size} bytes is not a whole number of uint16 tokens")
        tokens[split] = size // 2
        if tokens[split] <= cfg.block_size:
            raise RunDirError(f"{p}: holds {tokens[split]} tokens, but block_size={cfg.block_size} "
                              f"needs at least {cfg.block_size + 1} (lower block_size or add data)")
    vocab = sizing.data_vocab_size(d)
    if vocab and cfg.vocab_size and cfg.vocab_size < vocab:
        raise RunDirError(f"vocab_size: {cfg.vocab_size} is smaller than the data's vocabulary of {vocab}")
    return DataInfo(d, tokens["train"], tokens["val"], vocab)


def prepare(cfg: C.TrainConfig, run_dir: str | Path | None = None, force: bool = False) -> tuple[C.TrainConfig, DataInfo]:
    """Validate `cfg`, check its data and the run directory, write RUN_DIR/config.toml.

    Returns the config as written: out_dir is the run directory and data_dir is absolute, so
    the engine finds the data whatever its working directory.
    """
    with preparing(cfg, run_dir, force) as (written, info, _):
        return written, info


@contextmanager
def preparing(cfg: C.TrainConfig, run_dir: str | Path | None = None,
              force: bool = False) -> Iterator[tuple[C.TrainConfig, DataInfo, FileLock]]:
    """`prepare`, the run's lock still held in the block: an engine started there with the lock
    handed over (FileLock.handed_to_child) trains this very config, no other start slipping in
    between. Keep the block to starting it."""
    errors = C.validate(cfg)
    if errors:
        raise RunDirError(errors[0] if len(errors) == 1 else "; ".join(errors))
    rd = Path(run_dir if run_dir is not None else cfg.out_dir)
    info = check_data(cfg)
    if pretrained.is_gpt2(cfg.init_from):  # no download: say where local weights go, before anything is made
        try:
            pretrained.weights_file(cfg.init_from)
        except pretrained.PretrainedError as e:
            raise RunDirError(str(e)) from None
    cfg = C.replace(cfg, out_dir=str(rd), data_dir=str(info.data_dir.resolve()))
    if rd.exists() and not rd.is_dir():
        raise RunDirError(f"{rd}: exists and is not a directory")
    with holding(rd) as lock:
        ckpt = rd / layout.CKPT
        if cfg.init_from == "resume" and not ckpt.is_file():
            raise RunDirError(f"{ckpt}: no checkpoint to resume from (use --init_from=scratch to start)")
        if cfg.init_from == "resume":
            check_resume(cfg, ckpt, info.vocab_size)
        if cfg.init_from != "resume" and ckpt.is_file() and not force:  # scratch, or pretrained weights
            raise RunDirError(f"{rd}: already holds a run ({describe_run(rd)}); resume it with "
                              f"`gpttui train {rd}`, choose another out_dir, or replace it with --force")
        check_engine_can_write(rd)
        if not (cfg.init_from == "resume" and (rd / layout.CONFIG).is_file()):
            write_config(cfg, rd)
        yield cfg, info, lock


def engine_overrides(cfg: C.TrainConfig, run_dir: str | Path) -> list[str]:
    """`--key=value` for every field in which `cfg` differs from RUN_DIR/config.toml: what an
    engine started on the run must apply (and write into config.toml once it has accepted them)."""
    on_disk = C.load(run_dir).config.to_dict()
    return [f"--{k}={v!r}" for k, v in cfg.to_dict().items() if on_disk.get(k) != v]


def follow_dataset(cfg: C.TrainConfig, overrides: dict[str, Any]) -> C.TrainConfig:
    """A run's config.toml pins its data (data_dir, absolute): a --dataset given without a
    --data_dir moves the data to data/<dataset>, as for a new run, rather than being written
    into config.toml while the run goes on training on its old data."""
    if "dataset" in overrides and "data_dir" not in overrides and cfg.data_dir:
        return C.replace(cfg, data_dir="")
    return cfg


class NewFiles:
    """What a start adds to a run directory (config.toml, engine.lock, the directories above
    them), noted before it: removed again when its engine refuses the start, so a refused new
    run leaves nothing behind (the engine takes back its own files, see engine/host.py)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.dirs = dirs.missing(self.run_dir)
        self.files = [n for n in (layout.CONFIG, layout.ENGINE_LOCK) if not (self.run_dir / n).exists()]

    def remove(self) -> None:
        """Under the run's lock (nothing is removed if another start has taken it since)."""
        if not self.files and not self.dirs:
            return
        lock = FileLock(self.run_dir / layout.ENGINE_LOCK)
        try:
            if not lock.acquire(wait=1.0):
                return
        except OSError:
            return
        try:
            for name in self.files:
                (self.run_dir / name).unlink(missing_ok=True)
        finally:
            lock.release()
        dirs.remove_empty(self.dirs)



def start_from(run_dir: Path, cfg: C.TrainConfig) -> str:
    """The init_from that starts this run's engine again: its checkpoint when it has one, else the
    start it was made with (a fine-tune stopped before its first checkpoint starts from its
    pretrained weights again, not from a random model)."""
    if (run_dir / layout.CKPT).is_file():
        return "resume"
    return "scratch" if cfg.init_from == "resume" else cfg.init_from

# the files of a run the engine appends to (the others it replaces, which needs only the directory)
APPENDED = (layout.METRICS, layout.ENGINE_LOG, layout.SAMPLES)


def check_engine_can_write(run_dir: Path) -> None:
    """OSError naming the first of the run directory and the files the engine appends to that
    can't be written (a read-only mount, a missing permission): said before an engine starts."""
    check_writable(run_dir)
    for name in APPENDED:
        if (run_dir / name).exists():
            check_writable(run_dir / name)


@contextmanager
def holding(run_dir: Path) -> Iterator[FileLock]:
    """The run's lock for the block (RunDirLocked while an engine holds it). Directories and the
    lock file made here are removed again when the block raises: a refused start leaves nothing."""
    made = dirs.missing(run_dir)
    path = run_dir / layout.ENGINE_LOCK
    new_lock = not path.exists()
    lock = FileLock(path)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not lock.acquire(wait=1.0):  # (`engine_state.status` probes it with a brief shared lock)
            raise RunDirLocked(engine_state.locked_message(run_dir))
        yield lock
    except BaseException:
        if new_lock and lock.fd is not None:
            path.unlink(missing_ok=True)
        dirs.remove_empty(made)
        raise
    finally:
        lock.release()


def describe_run(run_dir: str | Path) -> str:
    """What RUN_DIR/ckpt.pt holds, in a few words, read without torch."""
    peek = peek_checkpoint(Path(run_dir) / layout.CKPT) or {}
    what = layout.CKPT
    if isinstance(peek.get("iter_num"), int):
        what += f" at iteration {peek['iter_num']:,}"
    best = peek.get("best_val_loss")
    if isinstance(best, float) and best < 1e9:
        what += f", best val loss {best:.4f}"
    return what


def write_config(cfg: C.TrainConfig, run_dir: str | Path) -> None:
    """RUN_DIR/config.toml, atomically."""
    C.save(cfg, Path(run_dir) / layout.CONFIG)


# ---------------------------------------------------------------- checkpoints, without torch

SHAPE_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


class _Opaque:
    """Stands in for every object a checkpoint's pickle names (tensors, storages...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Dict(dict):
    """An OrderedDict stand-in that takes attributes (state dicts carry `_metadata`)."""


class _Peek(pickle.Unpickler):
    """Reads the plain parts of a torch checkpoint; every global becomes an inert _Opaque,
    so nothing in the file is ever imported or called."""

    def find_class(self, module: str, name: str) -> Any:
        return _Dict if (module, name) == ("collections", "OrderedDict") else _Opaque

    def persistent_load(self, pid: Any) -> None:
        return None


def peek_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """A torch.save checkpoint's dict with tensors blanked out (model_args, iter_num, config are
    intact), or None if the file is not a readable zip checkpoint."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            with z.open(name) as f:
                obj = _Peek(f).load()
    except (OSError, zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, EOFError,
            ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None
    return obj if isinstance(obj, dict) else None


OPTIMIZER_KIND_KEY = "optimizer_kind"  # in a checkpoint: the optimizer its state is for; absent (nanoGPT's): AdamW


def optimizer_mismatch(ckpt: dict[str, Any], cfg: C.TrainConfig, path: str | Path) -> str | None:
    """Why a checkpoint's optimizer state can't resume under `cfg` (None when it can): the state
    only fits the optimizer it was made with. The engine says the same (engine/optim.py)."""
    kind = str(ckpt.get(OPTIMIZER_KIND_KEY, "adamw"))
    if "optimizer" not in ckpt or kind == cfg.optimizer:
        return None
    return (f"{path}: optimizer is {kind!r} in the checkpoint but {cfg.optimizer!r} in the config; "
            f"resume with --optimizer={kind} (or start a new run to switch)")


def check_resume(cfg: C.TrainConfig, ckpt: Path, data_vocab: int | None) -> None:
    """Refuse, before anything is written, a config the engine would refuse to resume this
    checkpoint with: a model shape or an optimizer that disagrees with it."""
    peek = peek_checkpoint(ckpt)
    if peek is None:
        return  # the engine reads it with torch and says what is wrong
    if why := optimizer_mismatch(peek, cfg, ckpt):
        raise RunDirError(why)
    args = peek.get("model_args")
    if not isinstance(args, dict):
        return
    want = {name: getattr(cfg, name) for name in SHAPE_ARGS}
    want["vocab_size"] = cfg.vocab_size or data_vocab or sizing.GPT2_PADDED_VOCAB
    for name in SHAPE_ARGS:
        if name in args and args[name] != want[name]:
            raise RunDirError(
                f"{ckpt}: {name} is {args[name]!r} in the checkpoint but {want[name]!r} in the "
                f"config; a checkpoint fixes the model's shape (start a new run to change it)")


def config_from_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """Config values saved in RUN_DIR/ckpt.pt (nanoGPT saves every knob of train.py there),
    for a nanoGPT out_dir that has no config.toml. Unknown keys and ill-typed values are skipped."""
    path = Path(run_dir) / layout.CKPT
    peek = peek_checkpoint(path)
    if peek is None or not isinstance(peek.get("config"), dict):
        raise RunDirError(f"{path}: cannot read a config from this checkpoint")
    values: dict[str, Any] = {}
    for key, value in peek["config"].items():
        try:
            values[key] = C.coerce(key, value)
        except C.ConfigError:
            continue
    return values
