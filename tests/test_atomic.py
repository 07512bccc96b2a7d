"""The one atomic write: the old file stays whole when a write fails, and no temporary is left."""

import os
import pickle

import pytest

from gpttui.fs import atomic


def test_write_replaces_the_whole_file(tmp_path):
    p = tmp_path / "config.toml"
    p.write_text("old content, longer than the new one\n" * 100)
    atomic.write_text(p, "new = 1\n")
    assert p.read_text() == "new = 1\n"
    atomic.write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert [f.name for f in tmp_path.iterdir()] == ["config.toml"]


def test_a_writer_that_raises_leaves_the_old_file_whole(tmp_path):
    p = tmp_path / "ckpt.pt"
    p.write_bytes(b"the previous checkpoint")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic.replacing(p) as f:
            f.write(b"half of the new one")
            raise RuntimeError("killed mid-write")
    assert p.read_bytes() == b"the previous checkpoint"
    assert [f.name for f in tmp_path.iterdir()] == ["ckpt.pt"]


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    p = tmp_path / "engine.json"
    p.write_text("{}")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError):
        atomic.write_text(p, '{"state": "running"}')
    assert p.read_text() == "{}" and [f.name for f in tmp_path.iterdir()] == ["engine.json"]


def test_replacing_gives_a_file_object_to_writers_that_need_one(tmp_path):
    p = tmp_path / "meta.pkl"
    with atomic.replacing(p) as f:
        assert f.name == str(tmp_path / f".meta.pkl.tmp{os.getpid()}")   # beside the target
        assert not p.exists()                                             # nothing visible yet
        pickle.dump({"vocab_size": 65}, f)
    assert pickle.loads(p.read_bytes()) == {"vocab_size": 65}
