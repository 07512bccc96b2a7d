"""Writing through a full disk: append-only files that never tear a line, and the disk-full rule.

A full disk (ENOSPC, or EDQUOT for a quota) must pause training, not crash it: the engine
reports it as an error event, keeps what it could not write in memory, and writes it once space
is freed, so metrics.jsonl loses nothing and never holds half a line followed by more lines.
A full disk is known by its errno wherever it is in the exception's chain (torch's zip writer
re-raises ENOSPC as a RuntimeError, "unexpected pos", with the OSError as its context) and,
when no errno says anything, by the target's file system having less room than the write needs.

Test hooks (environment variables, read once at start):
  GPTTUI_FAULT_DISK_FULL=PATH   every metrics and checkpoint write fails with ENOSPC while PATH
                                exists; deleting PATH "frees the space";
  GPTTUI_FAULT_SLOW_SAVE=SECS   a checkpoint write sleeps SECS with its temporary file half made,
                                a window for killing the engine mid-checkpoint.
Torch-free.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path
from typing import Callable

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
FAULT_DISK_FULL_ENV = "GPTTUI_FAULT_DISK_FULL"
FAULT_SLOW_SAVE_ENV = "GPTTUI_FAULT_SLOW_SAVE"
_FAULT_PATH = os.environ.get(FAULT_DISK_FULL_ENV, "")
_SLOW_SAVE_S = float(os.environ.get(FAULT_SLOW_SAVE_ENV, "") or 0)
ROOM_MARGIN = 64 << 10  # bytes beyond a write's own size that its file system must have free


def is_disk_full(e: BaseException, target: str | Path | None = None, need: int = 0) -> bool:
    """Whether `e` is a full disk: an ENOSPC/EDQUOT errno on it or on any exception it was raised
    from or during; failing any errno, (given the `target` written) too little free space there
    for `need` bytes."""
    errnos = [x.errno for x in _os_errors(e)]
    if errnos:
        return any(n in DISK_FULL_ERRNOS for n in errnos)
    return target is not None and not has_room(target, need)


def _os_errors(e: BaseException) -> list[OSError]:
    """The OSErrors with an errno in `e` and the exceptions it was raised from or during."""
    found, todo, seen = [], [e], set()
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, OSError) and x.errno is not None:
            found.append(x)
        todo += [x.__cause__, x.__context__]
    return found


def reason(e: BaseException) -> str:
    """A short why for a failed write: the errno's words where the chain has one."""
    errors = _os_errors(e)
    if errors:
        return errors[0].strerror or os.strerror(errors[0].errno)
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def free_bytes(target: str | Path) -> int:
    """Free bytes on the file system of `target` (or of its nearest existing parent)."""
    p = Path(target)
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free


def has_room(target: str | Path, need: int) -> bool:
    """Whether `need` bytes (and a margin) fit on the file system of `target`; True if it can't be asked."""
    try:
        return free_bytes(target) >= need + ROOM_MARGIN
    except OSError:
        return True


def check_injected_fault() -> None:
    """Raise ENOSPC while the test hook's file exists (no cost without the hook)."""
    if _FAULT_PATH and os.path.exists(_FAULT_PATH):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected: {_FAULT_PATH} exists)")


def _ends_torn(fd: int) -> bool:
    """The file is not empty and its last line has no newline (its writer was killed mid-line)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def injected_save_delay() -> None:
    """Sleep mid-checkpoint when the slow-save test hook asks for it."""
    if _SLOW_SAVE_S > 0:
        time.sleep(_SLOW_SAVE_S)


class AppendFile:
    """An append-only text file whose lines survive a full disk whole.

    `write` appends to a pending buffer and writes as much of it as the disk takes; what does
    not fit stays pending (a line cut by a partial write is finished later, never followed by
    another line first) and is retried at the next write or `flush`. `on_full(exc)` is called
    once each time the disk fills. Beyond `cap` pending bytes, new text is dropped and counted.
    File-object-like: write(str), flush(), close().
    """

    def __init__(self, path: str | Path, on_full: Callable[[OSError], None] | None = None,
                 cap: int = 64 << 20, faults: bool = False) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.on_full = on_full
        self.cap = cap
        self.faults = faults  # the test hook applies (metrics.jsonl yes, engine.log no)
        self.pending = bytearray()
        self.full = False
        self.dropped_bytes = 0
        if _ends_torn(self.fd):
            self.pending += b"\n"  # a killed writer's half line stays alone on its line

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        if len(self.pending) + len(data) > self.cap:
            self.dropped_bytes += len(data)
        else:
            self.pending += data
        self.flush()
        return len(text)

    def flush(self) -> None:
        """Write what is pending; on a full disk keep it and tell on_full (once per episode)."""
        while self.pending:
            try:
                if self.faults:
                    check_injected_fault()
                n = os.write(self.fd, self.pending)
            except InterruptedError:
                continue
            except OSError as e:
                if not is_disk_full(e):
                    raise
                if not self.full:
                    self.full = True
                    if self.on_full is not None:
                        self.on_full(e)
                return
            del self.pending[:n]
        self.full = False

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self.fd)
