"""The undo point of a live learning-rate change: the run's state from just before the change,
kept in RUN_DIR/ckpt_undo.pt (beside ckpt.pt and the keep_checkpoints rotation, which never
touch it) until the change has survived its first evaluation. `undo` loads it back with the old
values. Several changes before that evaluation share the first one's point: undo goes back to
before all of them. Rank 0 alone keeps it (other ranks learn of it when an undo comes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpttui.engine import checkpoint as K
from gpttui.run import config as C
from gpttui.run.live_set import LR_FIELDS, UNDO_CKPT


@dataclass
class UndoPoint:
    path: Path
    to_iter: int                    # the iteration its state is at
    set_at: int                     # the iteration the (first) change was applied at
    values: dict[str, Any] = field(default_factory=dict)  # the fields' values before the change(s)

    def flags(self) -> str:
        """The old values as --key=value flags (for a run that can no longer take `undo`)."""
        return " ".join(f"--{k}={v!r}" for k, v in sorted(self.values.items()))

    def describe(self) -> str:
        return (f"undo returns to iter {self.to_iter} with "
                + ", ".join(f"{k}={v!r}" for k, v in sorted(self.values.items())))


def keep(run_dir: Path, state: dict[str, Any], old: dict[str, Any], set_at: int,
         previous: UndoPoint | None) -> UndoPoint:
    """The undo point of a change from `old`: `state` (a checkpoint dict of the run now) written
    atomically, or, while an earlier change still waits for its eval, that change's point."""
    if previous is not None:
        return UndoPoint(previous.path, previous.to_iter, previous.set_at, {**old, **previous.values})
    path = run_dir / UNDO_CKPT
    K.save(path, state)
    return UndoPoint(path, state["iter_num"], set_at, dict(old))


def found(run_dir: Path, cfg: C.TrainConfig) -> UndoPoint | None:
    """The point a previous engine kept and never got to drop (it stopped before the change was
    evaluated), for a run that resumes, if its learning-rate fields still differ from the
    config's; else it is removed."""
    path = run_dir / UNDO_CKPT
    if not path.is_file():
        return None
    if cfg.init_from != "resume":  # a new run over the directory: nothing of the old one to undo
        path.unlink(missing_ok=True)
        return None
    try:
        ckpt = K.load(path, mmap=True)
    except K.CheckpointError:
        ckpt = {"config": {}, "iter_num": 0}
    old = {k: v for k, v in ckpt["config"].items() if k in LR_FIELDS and v != getattr(cfg, k)}
    if not old:
        path.unlink(missing_ok=True)
        return None
    return UndoPoint(path, ckpt["iter_num"], ckpt["iter_num"], old)
