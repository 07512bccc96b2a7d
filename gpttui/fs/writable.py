"""Can a path be written, asked before any work starts: a read-only mount or a missing permission
is said in one line naming the path, and nothing is created to find out."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def check_writable(path: str | Path) -> None:
    """Raise OSError (errno EROFS or EACCES, filename `path`) if `path` can't be written or made.

    The nearest existing directory at or above `path` is asked (os.access honours read-only
    mounts, root included); an existing file is asked itself."""
    p = Path(os.path.abspath(path))
    target = p
    while not target.exists():
        if target.parent == target:
            break
        target = target.parent
    if target.is_dir():
        ok = os.access(target, os.W_OK | os.X_OK)
    else:
        ok = target == p and os.access(target, os.W_OK)
        if not ok and target != p:  # a file where a directory should be
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
    if ok:
        return
    code = errno.EROFS if _read_only_mount(target) else errno.EACCES
    raise OSError(code, os.strerror(code), str(path))


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
