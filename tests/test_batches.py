"""Token ids are checked against the vocabulary when the data is opened, whichever windows a
batch would draw; the scan is remembered per file in the user's cache directory."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from gpttui.engine import batches
from gpttui.engine.batches import Batches, DataError


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _data(d, train, val=None):
    d.mkdir(parents=True, exist_ok=True)
    np.asarray(train, dtype=np.uint16).tofile(d / "train.bin")
    np.asarray(val if val is not None else np.arange(500) % 65, dtype=np.uint16).tofile(d / "val.bin")
    return d


def test_one_bad_id_in_a_million_is_named_at_open(tmp_path, cache_home):
    ids = np.random.default_rng(0).integers(0, 65, 1_000_000).astype(np.uint16)
    ids[777_777] = 70
    d = _data(tmp_path / "data", ids)
    with pytest.raises(DataError) as e:
        Batches(d, block_size=16, batch_size=4, device="cpu", vocab_size=65)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{d / 'train.bin'}: token id 70 at position 777,777")
    assert "vocabulary of 65" in message


def test_the_scan_is_cached_per_size_and_mtime(tmp_path, cache_home):
    d = _data(tmp_path / "data", np.arange(5000) % 65)
    Batches(d, 16, 4, "cpu", 65)
    cached = json.loads((cache_home / "gpttui" / "token-max.json").read_text())
    assert sorted(cached.values()) == [64, 64]
    # a bad id slipped in with the size and mtime kept: the cached answer is taken, no scan
    train = d / "train.bin"
    st = train.stat()
    ids = np.fromfile(train, dtype=np.uint16)
    ids[100] = 999
    ids.tofile(train)
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns))
    Batches(d, 16, 4, "cpu", 65)
    # a file changed the ordinary way (new mtime) is scanned again
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataError, match="token id 999 at position 100 "):
        Batches(d, 16, 4, "cpu", 65)


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    d = _data(tmp_path / "data", np.arange(5000) % 65)
    b = Batches(d, 16, 4, "cpu", 65)
    x, y = b.get("train")
    assert x.shape == (4, 16) and int(x.max()) < 65
    with pytest.raises(DataError, match="token id 65 at position 0 "):
        Batches(_data(tmp_path / "bad", [65] * 100), 16, 4, "cpu", 65)


def test_read_only_data_is_checked_and_cached_elsewhere(tmp_path, cache_home):
    d = _data(tmp_path / "ro" / "data", np.arange(5000) % 65)
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "ro"), str(tmp_path / "ro")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {r.stderr.strip()}")
    try:
        assert not os.access(d, os.W_OK)
        Batches(d, 16, 4, "cpu", 65)
        with pytest.raises(DataError, match="vocabulary of 50"):
            Batches(d, 16, 4, "cpu", 50)
        assert (cache_home / "gpttui" / "token-max.json").is_file()
        assert sorted(os.listdir(d)) == ["train.bin", "val.bin"]
    finally:
        subprocess.run(["umount", str(tmp_path / "ro")], check=False)


def test_the_cache_keeps_a_bounded_number_of_files(tmp_path, cache_home, monkeypatch):
    monkeypatch.setattr(batches, "CACHE_ENTRIES", 3)
    for i in range(5):
        _data(tmp_path / f"d{i}", np.arange(100) % 65)
        batches.max_token(tmp_path / f"d{i}" / "train.bin")
    cached = json.loads((cache_home / "gpttui" / "token-max.json").read_text())
    assert len(cached) == 3 and all(f"/d{i}/" in k for i, k in zip((2, 3, 4), cached))
