"""The bundled GPT-2 encoding and nanoGPT's character vocabularies."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from engine_kit import SHAKESPEARE

from gpttui.data import tokenizer
from gpttui.data.metapkl import write_meta_pkl


def test_gpt2_known_ids_and_specials() -> None:
    enc = tokenizer.gpt2()
    assert enc.name == "gpt2"
    assert enc.n_vocab == 50257 and enc.eot_token == 50256
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    # ordinary encoding treats the special token's text as text
    assert 50256 not in enc.encode_ordinary("a<|endoftext|>b")
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert tokenizer.gpt2() is enc  # cached


def test_gpt2_matches_nanogpt_shakespeare_counts() -> None:
    """nanoGPT's data/shakespeare/prepare.py reports 301,966 train and 36,059 val tokens."""
    data = SHAKESPEARE.read_text(encoding="utf-8")
    n = len(data)
    tok = tokenizer.GPT2Tokenizer()
    train, val = tok.encode(data[: int(n * 0.9)]), tok.encode(data[int(n * 0.9):])
    assert (len(train), len(val)) == (301_966, 36_059)
    assert tok.decode(val) == data[int(n * 0.9):]


def test_gpt2_never_touches_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("tiktoken.load.read_file", refuse)
    tokenizer.gpt2.cache_clear()
    try:
        assert tokenizer.gpt2().encode_ordinary(" the") == [262]
    finally:
        tokenizer.gpt2.cache_clear()


def test_ranks_hash_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "r50k_base.tiktoken"
    bad.write_bytes(tokenizer.GPT2_RANKS.read_bytes()[:-10])
    with pytest.raises(ValueError, match="sha256"):
        tokenizer._load_ranks(bad)


def test_char_tokenizer_as_nanogpt_builds_it() -> None:
    data = SHAKESPEARE.read_text(encoding="utf-8")
    tok = tokenizer.CharTokenizer.from_text(data)
    assert tok.vocab_size == 65 and tok.eot is None and tok.name == "char"
    assert tok.chars == sorted(set(data))
    assert tok.encode("hii there") == [tok.stoi[c] for c in "hii there"]
    assert tok.decode(tok.encode(data[:500])) == data[:500]


def test_char_encode_names_missing_characters() -> None:
    tok = tokenizer.CharTokenizer.from_text("abc ")
    with pytest.raises(ValueError, match=r"not in the vocabulary: '!', 'z'"):
        tok.encode("a z!")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 9])


def test_for_data_dir(tmp_path: Path) -> None:
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    assert tokenizer.for_data_dir(gpt).name == "gpt2"
    (gpt / "meta.json").write_text(json.dumps({"tokenizer": "gpt2", "vocab_size": 50257}))
    assert tokenizer.for_data_dir(gpt).vocab_size == 50257

    pkl = tmp_path / "pkl"
    pkl.mkdir()
    write_meta_pkl(pkl / "meta.pkl", sorted(set("hello world")))
    tok = tokenizer.for_data_dir(pkl)
    assert tok.name == "char" and tok.decode(tok.encode("hello")) == "hello"
    assert tok.chars == sorted(set("hello world"))

    js = tmp_path / "js"
    js.mkdir()
    (js / "meta.json").write_text(json.dumps({"tokenizer": "char", "chars": "abc"}))
    assert tokenizer.for_data_dir(js).encode("cab") == [2, 0, 1]
