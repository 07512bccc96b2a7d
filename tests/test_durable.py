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
