"""nanoGPT's character-vocabulary `meta.pkl`, read without trusting the pickle."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from gpttui.fs import atomic


class _DataOnly(pickle.Unpickler):
    """Refuses every global: a meta.pkl holds only dicts, strings and ints."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"meta.pkl refers to {module}.{name}; only plain data is allowed")


# What unpickling damaged bytes raises besides UnpicklingError: a length or an opcode's argument
# read from garbage goes wrong in any of these ways (MemoryError: a length past any buffer).
_GARBLED = (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, OverflowError,
            IndexError, KeyError, MemoryError, RecursionError)


def read_meta_pkl(path: str | Path) -> dict[str, Any]:
    """{'vocab_size': int, 'itos': {int: str}, 'stoi': {str: int}} as nanoGPT writes it. Anything
    else, damaged bytes included, is a ValueError naming the file: one line to show as it is."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            meta = _DataOnly(f).load()
    except OSError as e:
        raise ValueError(f"{p}: cannot read: {e.strerror or e}") from None
    except _GARBLED as e:
        said = " ".join(str(e).split())[:120]   # pickle's own messages may take two lines
        raise ValueError(f"{p}: not a nanoGPT meta.pkl: {type(e).__name__}: {said}") from None
    if not isinstance(meta, dict) or "vocab_size" not in meta:
        raise ValueError(f"{p}: not a nanoGPT meta.pkl (expected a dict with vocab_size, stoi, itos)")
    v = meta["vocab_size"]
    if type(v) is not int or v <= 0:
        raise ValueError(f"{p}: not a nanoGPT meta.pkl: vocab_size is {str(v)[:40]!r}, not a positive integer")
    return meta


def write_meta_pkl(path: str | Path, chars: list[str]) -> None:
    """Write meta.pkl exactly as nanoGPT's shakespeare_char/prepare.py does (atomically)."""
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    with atomic.replacing(path) as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
