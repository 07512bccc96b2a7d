"""The one lock: an exclusive `flock` on a file or a directory, held by an open descriptor.

flock rather than a pid file, because the kernel drops the lock when its holder dies, however it
dies (kill -9, out of memory), so no stale lock is ever left to clean up. The lock belongs to the
open file, so a second `FileLock` on the same path is refused even inside the same process.

A holder can hand its lock to a child process it starts, with no moment where the lock is free:
the child inherits the descriptor (`handed_to_child`), and its own `FileLock(path).acquire()`
takes that descriptor over instead of opening the file again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
RETRY_S = 0.05
HANDED_FD = "GPTTUI_LOCK_FD"  # names, in a child's environment, the lock descriptor it inherited


class FileLock:
    """An exclusive lock on `path` (a regular file is created if missing; a directory is locked as is)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None  # open while the lock is held; a holder may write to it

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, retrying for `wait` seconds; False when another holder keeps it."""
        if (fd := _handed(self.path)) is not None:
            self.fd = fd
            return True
        if self.path.is_dir():
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        try:
            while not _try(fd, fcntl.LOCK_EX):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(RETRY_S)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


    def handed_to_child(self, env: dict[str, str]) -> tuple[int, ...]:
        """For subprocess.Popen: `pass_fds`, with `env` naming the descriptor, so that the child's
        acquire() of the same path takes this lock over. Release ours once the child is started."""
        assert self.fd is not None, "hand over a held lock"
        env[HANDED_FD] = str(self.fd)
        return (self.fd,)


def _handed(path: Path) -> int | None:
    """The lock descriptor on `path` this process inherited from its starter, if any (once)."""
    named = os.environ.get(HANDED_FD, "")
    if not named.isdigit():
        return None
    fd = int(named)
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return None
    if not same or not _try(fd, fcntl.LOCK_EX):
        return None
    del os.environ[HANDED_FD]
    os.set_inheritable(fd, False)  # ours alone: a grandchild must not keep the run locked
    return fd


def is_held(path: str | Path) -> bool:
    """Whether some process holds the lock on `path`, probed with a brief shared lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if _try(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def _try(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in _HELD:
            return False
        raise
    return True
