import errno
import os

import pytest

from gpttui.engine import durable


def test_append_file_survives_a_full_disk_without_tearing_a_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    told = []
    f = durable.AppendFile(path, on_full=told.append)
    f.write('{"a":1}\n')
    real_write = os.write
    state = {"room": 5}

    def tight_write(fd, data):  # the disk takes 5 more bytes, then nothing
        if fd != f.fd:
            return real_write(fd, data)
        if state["room"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[:state["room"]]))
        state["room"] -= n
        return n

    monkeypatch.setattr(durable.os, "write", tight_write)
    f.write('{"b":2}\n')
    f.write('{"c":3}\n')
    assert path.read_text() == '{"a":1}\n{"b":'  # half a line on disk, the rest waiting
    assert len(told) == 1 and told[0].errno == errno.ENOSPC  # told once, not per line
    state["room"] = 10**6  # space freed
    f.write('{"d":4}\n')
    assert path.read_text() == '{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n'
    f.close()


def test_a_torn_last_line_left_by_a_kill_is_kept_apart_from_new_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a":1}\n{"b":')
    f = durable.AppendFile(path)
    f.write('{"c":3}\n')
    f.close()
    assert path.read_text().splitlines() == ['{"a":1}', '{"b":', '{"c":3}']


def test_other_write_errors_are_not_swallowed(tmp_path, monkeypatch):
    f = durable.AppendFile(tmp_path / "x")
    monkeypatch.setattr(durable.os, "write", lambda fd, d: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        f.write("line\n")


# ---------------------------------------------------------------- the full-disk rule on real errors

@pytest.fixture
def small_disk(tmpfs):
    """A 1 MB tmpfs that really fills (root only; skipped, saying why, where mount is refused; the
    engine's hook test covers the rule there)."""
    return tmpfs("disk", "1m")


def test_torch_s_zip_writer_on_a_full_disk_counts_as_disk_full_and_tears_nothing(small_disk):
    import torch

    from gpttui.engine import checkpoint as K

    path = small_disk / "ckpt.pt"
    K.save(path, {"model": {"w": torch.ones(1000)}, "model_args": {}, "iter_num": 7})
    big = {"model": {"w": torch.zeros(400_000)}, "model_args": {}, "iter_num": 8}  # 1.6 MB
    with pytest.raises(Exception) as e:
        K.save(path, big)
    # torch says "RuntimeError: [enforce fail at inline_container.cc...] unexpected pos ...": the
    # ENOSPC is only in its context (or, when the buffered file's close fails too, on top of it)
    assert not isinstance(e.value, OSError) or isinstance(e.value.__context__, RuntimeError)
    assert durable.is_disk_full(e.value, path, K.payload_bytes(big))
    assert K.load(path)["iter_num"] == 7
    assert sorted(p.name for p in small_disk.iterdir()) == ["ckpt.pt"]


def test_without_an_errno_the_free_space_on_the_target_decides(small_disk, tmp_path):
    bare = RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert durable.is_disk_full(bare, small_disk / "ckpt.pt", need=2 << 20)  # 2 MB on a 1 MB disk
    assert not durable.is_disk_full(bare, small_disk / "ckpt.pt", need=100 << 10)
    assert not durable.is_disk_full(bare)  # no target to ask: not a full disk


def test_the_errno_anywhere_in_the_chain_decides_before_free_space(small_disk):
    def raised_from(inner, outer, chained="cause"):
        try:
            try:
                raise inner
            except BaseException as e:
                if chained == "cause":
                    raise outer from e
                raise outer
        except BaseException as e:
            return e

    full = OSError(errno.ENOSPC, "No space left on device")
    assert durable.is_disk_full(raised_from(full, RuntimeError("unexpected pos 704 vs 598"), "context"))
    assert durable.is_disk_full(raised_from(full, ValueError("wrapped"), "cause"))
    assert durable.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    read_only = OSError(errno.EROFS, "Read-only file system")
    # a read-only disk is no full disk, even when little is free on it
    assert not durable.is_disk_full(read_only, small_disk / "x", need=2 << 20)
    assert not durable.is_disk_full(raised_from(read_only, RuntimeError("x")), small_disk / "x", need=2 << 20)
