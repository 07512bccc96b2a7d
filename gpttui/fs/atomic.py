"""The one atomic file write: a reader, or a crash, sees the old file or the new one, never half.

The new content goes to a temporary file beside the target (the same directory, so the rename
stays on one file system), is flushed and fsynced, renamed over the target, and the directory is
fsynced so that the rename itself survives a power cut. On any failure the temporary file is
removed and the old file is left as it was. An OSError on the way (a read-only or full file
system) names the target, not the temporary.

Temporary files are named `.NAME.tmpPID`: a new engine deletes the ones a killed engine left in
its run directory by that pattern (engine/host.py). One writer per file per process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def replacing(path: str | Path) -> Iterator[BinaryIO]:
    """Yield an open binary temporary file; when the block ends without error it replaces `path`.

    For writers that need a file object (torch.save, pickle.dump)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        f = open(tmp, "wb")
    except OSError as e:  # say the file the caller asked for, not our temporary
        raise OSError(e.errno, e.strerror, str(p)) from e
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is not None or e.errno is None:  # named already, or no errno to name it with
            raise
        raise OSError(e.errno, e.strerror, str(p)) from e  # a failed write (ENOSPC): say which file
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    """UTF-8, newlines as given."""
    write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: str | Path) -> None:
    """Make renames and unlinks in directory `path` durable; a no-op where directories can't be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is atomic all the same
    finally:
        os.close(fd)
