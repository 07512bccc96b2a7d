"""The bundled GPT-2 encoding and nanoGPT's character vocabularies."""

from __future__ import annotations

import json
import socket
import sys
import sysconfig
from pathlib import Path

import gigatoken
import numpy as np
import pytest
from engine_kit import SHAKESPEARE

from gpttui.data import tokenizer
from gpttui.data.metapkl import write_meta_pkl
from gpttui.data.prepare import prepare


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


def _test_corpora() -> list[str]:
    """Documents of tiny Shakespeare (blank-line separated) and every source of the Python standard library."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = SHAKESPEARE.read_text(encoding="utf-8").split("\n\n")
    for p in sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts):
        try:
            docs.append(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return docs


def _adversarial() -> list[str]:
    """Texts where a BPE reimplementation could part from tiktoken."""
    eot = "<|endoftext|>"
    code = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text(encoding="utf-8")
    cjk = "東京都は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。" * 3
    emoji = "🎉👍🏽👨‍👩‍👧‍👦🏳️‍🌈 🇯🇵 ❤️‍🔥" * 5
    return [
        eot, f"a{eot}b", f"x.{eot}.y", f"a  {eot}", f"{eot}{eot}", f" {eot}\n", f"end{eot}",
        f"{code[:5000]}{eot}{code[5000:9000]}", "<|endoftext", "endoftext|>", "<|endofprompt|>", "<|fim_prefix|>",
        " " * 10_000, "\n" * 5000, "\t \n  \r\n" * 2000, "a" + " " * 777 + "b", "word   \n\n\n   ",
        cjk, emoji, cjk + emoji + code[:3000], "Ünïcödé straße İstanbul ǅ ﬁ ℌ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200b\u200d\ufeff",
        "\ud7ff\ue000\uffff" + chr(0x10FFFF) + "\x00\x01\x7f",
        "1234567890" * 500, "I'd've we'll they're O'NEIL's 'S 'LL", "x" * 200_000,
        code * 40,  # over 1 MB as one document
        (cjk + " the quick brown fox ") * 20_000,  # over 1 MB of mixed scripts
        "".join(chr(c) for c in range(32, 0x3000)),
    ]


def test_the_fast_encoder_gives_tiktokens_ids_on_every_document() -> None:
    tokenizer.gpt2_encoder.cache_clear()
    encode, note = tokenizer.gpt2_encoder()
    assert note == "" and isinstance(encode, tokenizer.GigatokenEncoder)  # gigatoken is in use
    reference = tokenizer.gpt2()
    docs = _test_corpora()
    assert len(docs) > 8000
    for doc in docs:
        assert list(encode(doc)) == reference.encode_ordinary(doc), doc[:200]
    assert max(len(d) for d in _adversarial()) > 1_000_000
    for doc in _adversarial():
        assert list(encode(doc)) == reference.encode_ordinary(doc), doc[:200]
    assert list(encode(tokenizer.CHECK_SAMPLE)) == reference.encode_ordinary(tokenizer.CHECK_SAMPLE)


def test_the_fast_encoder_built_anew_still_gives_tiktokens_ids() -> None:
    reference = tokenizer.gpt2()
    encode = tokenizer.GigatokenEncoder(reference, rebuild_chars=50_000)
    docs = _test_corpora()[-300:]
    for doc in docs:
        assert list(encode(doc)) == reference.encode_ordinary(doc), doc[:200]
    assert encode.rebuilds >= sum(map(len, docs)) // 50_000 // 2


def test_a_fast_encoder_that_differs_falls_back_to_tiktoken_with_a_note(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    real_build = gigatoken.Tokenizer.from_tiktoken

    class OffByOne:
        def __init__(self, *args: object) -> None:
            self.real = real_build(*args)

        def as_tiktoken(self) -> object:
            return self.real.as_tiktoken()

        def encode(self, text: str) -> np.ndarray:
            return np.minimum(self.real.encode(text) + 1, 50255)

    monkeypatch.setattr(gigatoken.Tokenizer, "from_tiktoken", OffByOne)
    tokenizer.gpt2_encoder.cache_clear()
    try:
        encode, note = tokenizer.gpt2_encoder()
        assert encode == tokenizer.gpt2().encode_ordinary
        assert note == "gigatoken's ids differ from tiktoken's on the check sample: tokenizing with tiktoken"
        text = tmp_path / "a.txt"
        text.write_text("Hello world, twice.\n\n" * 50)
        result = prepare([text], tmp_path / "out", workers=1, split_blank_lines=True)
        assert note in result.notes
        ids = np.fromfile(tmp_path / "out" / "train.bin", dtype=np.uint16)
        assert ids[:5].tolist() == tokenizer.gpt2().encode_ordinary("Hello world, twice.")
    finally:
        tokenizer.gpt2_encoder.cache_clear()


def test_without_gigatoken_prepare_uses_tiktoken_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gigatoken", None)  # import gigatoken now raises ImportError
    tokenizer.gpt2_encoder.cache_clear()
    try:
        encode, note = tokenizer.gpt2_encoder()
        assert encode == tokenizer.gpt2().encode_ordinary
        assert note == "gigatoken is not installed: tokenizing with tiktoken"
    finally:
        tokenizer.gpt2_encoder.cache_clear()
