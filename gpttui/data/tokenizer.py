"""Tokenizers: GPT-2 BPE from the bundled ranks, and nanoGPT's character vocabularies.

GPT-2's ranks ship inside the package (assets/r50k_base.tiktoken, the file tiktoken itself
downloads, checked by the same sha256), so nothing here ever reaches the network: the file
is read directly rather than through tiktoken.load, which would also copy it into a cache.
This module never imports torch: `gpttui prepare`, the sampler and the UI all use it.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tiktoken
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

from gpttui.data.metapkl import read_meta_pkl

GPT2_RANKS = Path(__file__).resolve().parent.parent / "assets" / "r50k_base.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_EOT = 50256
GPT2_VOCAB_SIZE = 50257


def _load_ranks(path: Path) -> dict[bytes, int]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != GPT2_RANKS_SHA256:
        raise ValueError(f"{path}: sha256 {digest} is not GPT-2's r50k_base ranks ({GPT2_RANKS_SHA256})")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def gpt2() -> tiktoken.Encoding:
    """The same encoding as tiktoken.get_encoding("gpt2"), built offline (cached per process)."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,  # the installed tiktoken's own gpt2 pattern
        mergeable_ranks=_load_ranks(GPT2_RANKS),
        special_tokens={ENDOFTEXT: GPT2_EOT},
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )


# Checked against tiktoken before the fast encoder is trusted: prose, code, whitespace runs,
# contractions, digits, non-Latin scripts, emoji and a special token's text (encoded as text).
CHECK_SAMPLE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
    "def f(x):\n    return {'a': x ** 2}  # it's 3.14159, isn't it? I'd've 1,000,000\n\t\t  \n"
    "Ünïcödé straße 東京都 Привет мир مرحبا 🎉👍🏽 <|endoftext|> <|endoftext|>x  trailing   "
)


Ids = Sequence[int] | np.ndarray  # an encoder's output: tiktoken's list, or gigatoken's uint32 array


# gigatoken caches the ids of every distinct piece it has encoded, for the life of its encoder:
# a long stream of new text grows that cache without bound, so the encoder is built anew (a
# fraction of a second) after this many characters, and the freed cache handed back to the
# system (glibc keeps it otherwise), which keeps a worker's memory bounded.
GIGATOKEN_REBUILD_CHARS = 100_000_000


def _return_freed_memory() -> None:
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


class GigatokenEncoder:
    """gigatoken's encoder on the bundled ranks, with tiktoken for the texts it reads differently.

    gigatoken always reads a special token's text as the special token, where encode_ordinary
    encodes it as text; splitting around it is not enough (the regex joins "<|" with the
    punctuation or space before it), so such documents, rare in real data, go to tiktoken whole.
    """

    def __init__(self, reference: tiktoken.Encoding, rebuild_chars: int = GIGATOKEN_REBUILD_CHARS) -> None:
        import gigatoken

        self._build = functools.partial(gigatoken.Tokenizer.from_tiktoken, str(GPT2_RANKS))
        self._fast = self._build()
        self._slow = reference.encode_ordinary
        self.specials = tuple(self._fast.as_tiktoken().special_tokens_set | reference.special_tokens_set)
        self.rebuild_chars = rebuild_chars
        self.rebuilds = 0
        self._chars = 0

    def __call__(self, text: str) -> Ids:
        if any(s in text for s in self.specials):
            return self._slow(text)
        self._chars += len(text)
        if self._chars > self.rebuild_chars:
            self._fast = None
            _return_freed_memory()
            self._fast, self._chars = self._build(), len(text)
            self.rebuilds += 1
        return self._fast.encode(text)


@functools.cache
def gpt2_encoder() -> tuple[Callable[[str], Ids], str]:
    """encode_ordinary for GPT-2's ids, the fastest one that matches tiktoken, and a note when
    it falls back to tiktoken. gigatoken (a Rust BPE reading the same ranks) is used only if it
    is installed and gives tiktoken's ids on CHECK_SAMPLE, and on it without its special
    tokens, in this process."""
    reference = gpt2()
    try:
        fast = GigatokenEncoder(reference)
    except ImportError:
        return reference.encode_ordinary, "gigatoken is not installed: tokenizing with tiktoken"
    except Exception as e:  # an incompatible gigatoken release
        return reference.encode_ordinary, f"gigatoken failed to load ({type(e).__name__}): tokenizing with tiktoken"
    try:
        same = all(list(fast(text)) == reference.encode_ordinary(text)
                   for text in (CHECK_SAMPLE, CHECK_SAMPLE.replace(ENDOFTEXT, "")))
    except Exception as e:
        return reference.encode_ordinary, f"gigatoken failed its check ({type(e).__name__}): tokenizing with tiktoken"
    if not same:
        return reference.encode_ordinary, "gigatoken's ids differ from tiktoken's on the check sample: tokenizing with tiktoken"
    return fast, ""


class Tokenizer:
    """What the sampler, the demo and `prepare` need from a tokenizer."""

    name: str
    vocab_size: int
    eot: int | None  # appended after every document, or None (char data has no separator)

    def encode(self, text: str) -> list[int]:
        """Ordinary text to ids; special tokens in the text are encoded as plain text."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError


@dataclass
class GPT2Tokenizer(Tokenizer):
    name: str = "gpt2"
    vocab_size: int = GPT2_VOCAB_SIZE
    eot: int | None = GPT2_EOT

    @property
    def encoding(self) -> tiktoken.Encoding:
        return gpt2()

    def encode(self, text: str) -> list[int]:
        return gpt2().encode_ordinary(text)

    def decode(self, ids: Iterable[int]) -> str:
        return gpt2().decode(list(ids))


@dataclass
class CharTokenizer(Tokenizer):
    """nanoGPT's shakespeare_char vocabulary: one id per character, sorted."""

    chars: list[str] = field(default_factory=list)
    name: str = "char"
    vocab_size: int = 0
    eot: int | None = None

    def __post_init__(self) -> None:
        self.vocab_size = len(self.chars)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The vocabulary of a text, as nanoGPT builds it: sorted(set(text))."""
        return cls(sorted(set(text)))

    @classmethod
    def from_meta_pkl(cls, path: str | Path) -> CharTokenizer:
        meta = read_meta_pkl(path)
        itos = meta.get("itos")
        if not isinstance(itos, dict) or sorted(itos) != list(range(len(itos))):
            raise ValueError(f"{path}: meta.pkl has no itos mapping ids 0..n-1 to characters")
        return cls([itos[i] for i in range(len(itos))])

    @classmethod
    def from_meta_json(cls, path: str | Path) -> CharTokenizer:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
        chars = meta.get("chars")
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"{path}: meta.json for a char tokenizer needs 'chars' (the vocabulary, in id order)")
        return cls(list(chars))

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            missing = sorted(set(text) - stoi.keys())
            shown = ", ".join(repr(c) for c in missing[:20]) + (", ..." if len(missing) > 20 else "")
            raise ValueError(f"characters not in the vocabulary: {shown}") from None

    def decode(self, ids: Iterable[int]) -> str:
        itos = self.itos
        try:
            return "".join(itos[int(i)] for i in ids)
        except KeyError as e:
            raise ValueError(f"token id {e.args[0]} is outside the vocabulary (0..{self.vocab_size - 1})") from None


def get(name: str) -> Tokenizer:
    """A tokenizer that needs no data: only "gpt2" (a char vocabulary comes from its data)."""
    if name == "gpt2":
        return GPT2Tokenizer()
    raise ValueError(f"unknown tokenizer {name!r} (expected gpt2, or char with a data directory)")


def for_data_dir(data_dir: str | Path) -> Tokenizer:
    """The tokenizer a data directory was prepared with.

    nanoGPT's rule: a meta.pkl means a character vocabulary; gpttui's meta.json says so too
    (and carries the vocabulary); anything else is GPT-2.
    """
    d = Path(data_dir)
    if (d / "meta.pkl").exists():
        return CharTokenizer.from_meta_pkl(d / "meta.pkl")
    meta_json = d / "meta.json"
    if meta_json.exists():
        try:
            meta = json.loads(meta_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{meta_json}: not readable JSON: {e}") from None
        if isinstance(meta, dict) and meta.get("tokenizer") == "char":
            return CharTokenizer.from_meta_json(meta_json)
    return GPT2Tokenizer()

