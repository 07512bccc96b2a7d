"""Directories made for a piece of work that may be refused or fail: what a
`mkdir(parents=True)` is about to make is noted first, so a failure can remove it again and
leave no empty directory behind (run/directory.py's start, data/prepare.py's output)."""

from __future__ import annotations

from pathlib import Path


def missing(path: Path) -> list[Path]:
    """The directories at and above `path` that do not exist yet, deepest first."""
    made = []
    for d in (path, *path.absolute().parents):
        if d.exists():
            break
        made.append(d)
    return made


def remove_empty(made: list[Path]) -> None:
    """Remove `made` (deepest first) while they are empty; one that is not stays, with those above it."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            return
