"""gpttui prepare: token streams, splits, sources, char data as nanoGPT, no-op re-runs."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_kit import SHAKESPEARE

from gpttui.data import sources
from gpttui.data.metapkl import read_meta_pkl
from gpttui.data.prepare import prepare
from gpttui.data.tokenizer import gpt2
from gpttui.run import sizing

TEXT = SHAKESPEARE.read_text(encoding="utf-8")
FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score",
                   "token_count"]


def shakespeare_docs(n: int, seed: int = 0) -> list[str]:
    """n documents of varied length cut from tiny Shakespeare at random places."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        size = rng.randint(20, 3000)
        at = rng.randrange(len(TEXT) - size)
        docs.append(TEXT[at:at + size])
    return docs


def write_fineweb(path: Path, texts: list[str | None], row_group_size: int = 40) -> Path:
    """A parquet file with FineWeb's columns, several row groups."""
    n = len(texts)
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "id": [f"<urn:uuid:{i:08x}>" for i in range(n)],
        "dump": ["CC-MAIN-2013-20"] * n,
        "url": [f"http://example.org/{i}" for i in range(n)],
        "date": ["2013-05-18T05:48:54Z"] * n,
        "file_path": ["s3://commoncrawl/crawl-data/x.warc.gz"] * n,
        "language": ["en"] * n,
        "language_score": [0.9] * n,
        "token_count": [len(t or "") // 4 for t in texts],
    })
    assert table.column_names == FINEWEB_COLUMNS
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def gpt2_docs(docs: list[str]) -> list[list[int]]:
    enc = gpt2()
    return [enc.encode_ordinary(d) + [50256] for d in docs]


def split_as_meta(meta: dict, per_doc: list[list[int]]) -> tuple[list[int], list[int]]:
    """Rebuild train/val from meta.json's split description."""
    sp = meta["split"]
    n = len(per_doc)
    if "val_docs" in sp:
        val_idx = set(range(n - sp["val_docs"], n))
    else:
        p, q = sp["p"], sp["q"]
        val_idx = {i for i in range(n) if (i + 1) * p // q > i * p // q}
        if sp["last_document_moved_to_val"]:
            val_idx = {n - 1}
    train = [t for i, d in enumerate(per_doc) if i not in val_idx for t in d]
    val = [t for i, d in enumerate(per_doc) if i in val_idx for t in d]
    return train, val


def read_bins(out: Path, dtype=np.uint16) -> tuple[list[int], list[int]]:
    return (np.fromfile(out / "train.bin", dtype).tolist(), np.fromfile(out / "val.bin", dtype).tolist())


def test_parquet_stream_is_gpt2_of_each_document_then_eot(tmp_path: Path) -> None:
    docs = shakespeare_docs(300)
    texts: list[str | None] = list(docs)
    texts[7] = None
    texts[50] = ""
    texts[299] = None
    src = write_fineweb(tmp_path / "000_00000.parquet", texts)
    out = tmp_path / "data"
    r = prepare([src], out, val_fraction=0.01)
    kept = [t for t in texts if t]
    meta = json.loads((out / "meta.json").read_text())
    assert meta == r.meta and not r.up_to_date
    train, val = split_as_meta(meta, gpt2_docs(kept))
    assert read_bins(out) == (train, val)
    assert meta["split"]["p"] == 1 and meta["split"]["q"] == 100
    assert meta["documents"] == {"total": 297, "skipped_empty": 3, "train": 295, "val": 2}
    assert meta["tokens"] == {"train": len(train), "val": len(val)}
    assert meta["tokenizer"] == "gpt2" and meta["vocab_size"] == 50257 and meta["dtype"] == "uint16"
    st = src.stat()
    assert meta["sources"] == [{"path": str(src.resolve()), "kind": "parquet", "size": st.st_size,
                                "mtime": st.st_mtime}]
    assert meta["command"].startswith("gpttui prepare ") and "--val-fraction 0.01" in meta["command"]
    assert not (out / "meta.pkl").exists()
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "train.bin", "val.bin"]


def test_nanogpt_loader_reads_the_output(tmp_path: Path) -> None:
    """nanoGPT's get_batch: np.memmap(uint16) and windows of block_size + 1 tokens."""
    out = tmp_path / "data"
    prepare([write_fineweb(tmp_path / "a.parquet", shakespeare_docs(60))], out)
    block_size = 64
    for split in ("train", "val"):
        data = np.memmap(out / f"{split}.bin", dtype=np.uint16, mode="r")
        ix = np.random.default_rng(0).integers(0, len(data) - block_size, 4)
        x = np.stack([data[i:i + block_size].astype(np.int64) for i in ix])
        y = np.stack([data[i + 1:i + 1 + block_size].astype(np.int64) for i in ix])
        assert x.shape == y.shape == (4, block_size) and (x[:, 1:] == y[:, :-1]).all()
        text = gpt2().decode(data[:200].tolist())
        assert text.split("<|endoftext|>")[0] in TEXT


def test_worker_processes_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = shakespeare_docs(400, seed=3)
    src = write_fineweb(tmp_path / "a.parquet", docs, row_group_size=25)
    prepare([src], tmp_path / "one", workers=1, val_fraction=0.02)
    monkeypatch.setattr("gpttui.data.prepare.PARALLEL_MIN_BYTES", 0)
    r = prepare([src], tmp_path / "two", workers=2, val_fraction=0.02)
    assert r.meta["workers"] == 2
    # row groups too big for a worker are read here in batches: same bytes again
    monkeypatch.setattr("gpttui.data.sources.MAX_ROW_GROUP_BYTES", 1000)
    monkeypatch.setattr("gpttui.data.prepare.CHUNK_BYTES", 5000)
    prepare([src], tmp_path / "batches", workers=2, val_fraction=0.02)
    for d in ("two", "batches"):
        for f in ("train.bin", "val.bin"):
            assert (tmp_path / d / f).read_bytes() == (tmp_path / "one" / f).read_bytes()


def test_val_docs_holds_out_the_last_documents(tmp_path: Path) -> None:
    docs = shakespeare_docs(50)
    out = tmp_path / "data"
    r = prepare([write_fineweb(tmp_path / "a.parquet", docs)], out, val_docs=5)
    per_doc = gpt2_docs(docs)
    assert read_bins(out) == ([t for d in per_doc[:45] for t in d], [t for d in per_doc[45:] for t in d])
    assert r.meta["documents"]["val"] == 5 and r.meta["split"]["val_docs"] == 5


def test_fraction_selecting_nothing_makes_the_last_document_val(tmp_path: Path) -> None:
    docs = shakespeare_docs(10)
    out = tmp_path / "data"
    r = prepare([write_fineweb(tmp_path / "a.parquet", docs)], out)  # 0.0005: every 2000th document
    per_doc = gpt2_docs(docs)
    assert read_bins(out) == ([t for d in per_doc[:9] for t in d], per_doc[9])
    assert r.meta["split"]["last_document_moved_to_val"] is True
    assert any("last document is val" in n for n in r.notes)


def test_char_is_nanogpt_shakespeare_char(tmp_path: Path) -> None:
    """nanoGPT's data/shakespeare_char/prepare.py, step by step."""
    out = tmp_path / "shakespeare_char"
    r = prepare([SHAKESPEARE], out, tokenizer="char")
    data = TEXT
    chars = sorted(list(set(data)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    n = len(data)
    train_ids = [stoi[c] for c in data[:int(n * 0.9)]]
    val_ids = [stoi[c] for c in data[int(n * 0.9):]]
    assert (len(train_ids), len(val_ids)) == (1_003_854, 111_540)  # nanoGPT's README figures
    assert np.memmap(out / "train.bin", dtype=np.uint16, mode="r").tolist() == train_ids
    assert np.memmap(out / "val.bin", dtype=np.uint16, mode="r").tolist() == val_ids
    expected = {"vocab_size": 65, "itos": itos, "stoi": stoi}
    assert read_meta_pkl(out / "meta.pkl") == expected
    with open(out / "meta.pkl", "rb") as f:
        assert pickle.load(f) == expected  # as nanoGPT's sample.py loads it
    assert r.meta["tokenizer"] == "char" and r.meta["vocab_size"] == 65
    assert r.meta["chars"] == "".join(chars) and r.meta["eot"] is None
    assert r.meta["split"]["by"] == "characters" and r.meta["split"]["train_chars"] == int(n * 0.9)


def test_one_text_cut_by_characters_tokenizes_the_same_in_workers(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut falls inside one of many chunks; worker processes give the bytes of one process."""
    text = TEXT[:200_000]
    src = tmp_path / "one.txt"
    src.write_text(text, encoding="utf-8")
    monkeypatch.setattr("gpttui.data.prepare.CHUNK_BYTES", 7_000)
    monkeypatch.setattr("gpttui.data.prepare.PARALLEL_MIN_BYTES", 0)
    one = prepare([src], tmp_path / "one", workers=1, val_fraction=0.05)
    two = prepare([src], tmp_path / "two", workers=2, val_fraction=0.05)
    assert two.meta["workers"] == 2 and read_bins(tmp_path / "one") == read_bins(tmp_path / "two")
    cut = int(len(text) * 0.95)
    enc = gpt2()
    assert read_bins(tmp_path / "one") == (enc.encode_ordinary(text[:cut]), enc.encode_ordinary(text[cut:]) + [50256])
    assert one.meta["options"]["val_fraction"] == 0.05 and not one.warnings


def test_char_val_fraction_and_val_docs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("hello world\n")
    b.write_text("goodbye, moon!\n")
    prepare([a, b], tmp_path / "f", tokenizer="char", val_fraction=0.25)
    whole = "hello world\ngoodbye, moon!\n"
    stoi = {c: i for i, c in enumerate(sorted(set(whole)))}
    ids = [stoi[c] for c in whole]
    cut = int(len(whole) * 0.75)
    assert read_bins(tmp_path / "f") == (ids[:cut], ids[cut:])
    r = prepare([a, b], tmp_path / "d", tokenizer="char", val_docs=1)
    assert read_bins(tmp_path / "d") == (ids[:12], ids[12:])
    assert r.meta["documents"] == {"total": 2, "skipped_empty": 0, "train": 1, "val": 1}


def test_directories_globs_txt_and_jsonl(tmp_path: Path) -> None:
    docs = shakespeare_docs(12, seed=5)
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    write_fineweb(root / "sub" / "b.parquet", docs[:4], row_group_size=3)
    write_fineweb(root / "sub" / "deeper" / "c.parquet", docs[4:6])
    write_fineweb(root / ".cache" / "hidden.parquet", ["not me"])
    (root / "README.md").write_text("not a source")
    (root / "a.txt").write_text(docs[6])
    (root / "empty.txt").write_text("")
    lines = [json.dumps({"text": docs[7], "n": 1}), "", json.dumps({"text": None}), json.dumps({"other": 1}),
             json.dumps({"text": ""}), json.dumps({"text": docs[8]})]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    extra = tmp_path / "e.txt"
    paragraphs = [re.sub(r"\n\s*\n", "\n", d).strip("\n") for d in docs[9:12]]  # no blank lines inside
    extra.write_text(f"{paragraphs[0]}\n\n \n\n{paragraphs[1]}\r\n\r\n{paragraphs[2]}\n")
    out = tmp_path / "data"

    # a directory is searched recursively, files sorted, hidden ones and unknown kinds left out
    r = prepare([root, tmp_path / "d.jsonl"], out, val_docs=1)
    order = [docs[6]] + docs[:4] + docs[4:6] + [docs[7], docs[8]]  # a.txt, empty.txt, sub/b, sub/deeper/c
    per_doc = gpt2_docs(order)
    assert read_bins(out)[0] + read_bins(out)[1] == [t for d in per_doc for t in d]
    assert r.meta["documents"]["skipped_empty"] == 4  # empty.txt, null, missing field, ""
    assert [Path(s["path"]).name for s in r.meta["sources"]] == ["a.txt", "empty.txt", "b.parquet",
                                                                 "c.parquet", "d.jsonl"]

    # '**' globs any depth; a .txt split on blank lines (whitespace-only lines count as blank)
    r = prepare([str(root / "**" / "*.parquet"), extra], tmp_path / "g", split_blank_lines=True,
                  val_docs=1)
    per_doc = gpt2_docs(docs[:6] + paragraphs)
    train, val = read_bins(tmp_path / "g")
    assert train + val == [t for d in per_doc for t in d]
    assert r.meta["documents"]["total"] == 9


def test_long_text_cut_into_pieces_tokenizes_as_a_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big one-document file is streamed in pieces cut where GPT-2 tokens don't change."""
    monkeypatch.setattr("gpttui.data.sources.READ_BLOCK", 3000)
    monkeypatch.setattr("gpttui.data.prepare.CHUNK_BYTES", 2000)
    part = TEXT[:200_000]
    (tmp_path / "a.txt").write_text(part)
    (tmp_path / "b.txt").write_text("The end.\n")
    r = prepare([tmp_path / "a.txt", tmp_path / "b.txt"], tmp_path / "out", val_docs=1)
    enc = gpt2()
    assert read_bins(tmp_path / "out") == (enc.encode_ordinary(part) + [50256],
                                           enc.encode_ordinary("The end.\n") + [50256])
    assert r.meta["documents"] == {"total": 2, "skipped_empty": 0, "train": 1, "val": 1}
    # cut by hand at every safe place (after newlines, or before spaces in a one-line text)
    for whole in (TEXT[:3000], TEXT[:3000].replace("\n", " ")):
        text, tokens, cuts = whole, enc.encode_ordinary(whole), 0
        while (cut := sources.safe_cut(text)) > 0:
            assert enc.encode_ordinary(whole[:cut]) + enc.encode_ordinary(whole[cut:]) == tokens
            text, cuts = whole[:cut - 1], cuts + 1
        assert cuts > 40


def test_one_line_text_is_cut_at_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpttui.data.sources.READ_BLOCK", 3000)
    monkeypatch.setattr("gpttui.data.prepare.CHUNK_BYTES", 2000)
    line = TEXT[:100_000].replace("\n", " ")
    (tmp_path / "a.txt").write_text(line)
    (tmp_path / "b.txt").write_text("fin")
    prepare([tmp_path / "a.txt", tmp_path / "b.txt"], tmp_path / "out", val_docs=1)
    assert read_bins(tmp_path / "out")[0] == gpt2().encode_ordinary(line) + [50256]
    assert len(list(sources.chunks(sources.resolve([tmp_path / "a.txt"])[0], text_column="text",
                             split_blank_lines=False, errors="strict", target_bytes=2000))) > 10


def test_paragraphs_do_not_depend_on_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "p.txt"
    long_para = TEXT[:40_000].replace("\n\n", "\n")  # one paragraph bigger than 4 small blocks
    src.write_text("\n\n" + TEXT[:30_000] + "\n  \n\n\n" + long_para + "\n\n" + TEXT[30_000:60_000] + "\n")
    prepare([src], tmp_path / "big", split_blank_lines=True, val_docs=1)
    monkeypatch.setattr("gpttui.data.sources.READ_BLOCK", 1000)
    monkeypatch.setattr("gpttui.data.prepare.CHUNK_BYTES", 700)
    prepare([src], tmp_path / "small", split_blank_lines=True, val_docs=1)
    assert read_bins(tmp_path / "small") == read_bins(tmp_path / "big")
    text = src.read_text()
    paras = [p.strip("\r\n") for p in sources.BLANK_LINES.split(text) if p.strip()]
    assert long_para in paras
    train, val = read_bins(tmp_path / "big")
    assert train + val == [t for d in gpt2_docs(paras) for t in d]


def test_rerun_is_a_noop_until_inputs_change_or_force(tmp_path: Path) -> None:
    src = write_fineweb(tmp_path / "a.parquet", shakespeare_docs(30))
    out = tmp_path / "data"
    prepare([src], out)
    stamp = {f: (out / f).stat().st_mtime_ns for f in ("train.bin", "val.bin", "meta.json")}
    r = prepare([src], out)
    assert r.up_to_date and r.meta["tokens"]["train"] > 0
    assert {f: (out / f).stat().st_mtime_ns for f in stamp} == stamp
    assert not prepare([src], out, force=True).up_to_date
    assert not prepare([src], out, val_docs=2).up_to_date  # other options: redone
    assert prepare([src], out, val_docs=2).up_to_date
    os.utime(src, (1_000_000_000, 1_000_000_000))  # the source changed
    assert not prepare([src], out, val_docs=2).up_to_date
    (out / "val.bin").write_bytes(b"")  # an output that no longer matches meta.json
    assert not prepare([src], out, val_docs=2).up_to_date


def test_gpt2_over_char_data_removes_the_stale_meta_pkl(tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare([SHAKESPEARE], out, tokenizer="char")
    r = prepare([write_fineweb(tmp_path / "a.parquet", shakespeare_docs(5))], out)
    assert not (out / "meta.pkl").exists()
    assert any("meta.pkl" in n for n in r.notes)


def test_vocabulary_over_65536_characters_is_uint32_and_says_so(tmp_path: Path) -> None:
    cps = [c for c in range(0x100, 0x100 + 70_000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(map(chr, cps))
    (tmp_path / "wide.txt").write_text(text, encoding="utf-8")
    r = prepare([tmp_path / "wide.txt"], tmp_path / "data", tokenizer="char")
    assert r.meta["dtype"] == "uint32" and r.meta["vocab_size"] == len(cps)
    assert "uint32" in r.meta["note"] and any("nanoGPT" in n and "uint32" in n for n in r.notes)
    cut = int(len(text) * 0.9)
    assert read_bins(tmp_path / "data", np.uint32) == (list(range(cut)), list(range(cut, len(cps))))


def test_training_config_sizes_the_vocabulary_as_nanogpt(tmp_path: Path) -> None:
    """GPT-2 data pads to 50304 (nanoGPT without meta.pkl); char data uses its meta's size."""
    from gpttui.run import config as C

    prepare([write_fineweb(tmp_path / "a.parquet", shakespeare_docs(5))], tmp_path / "gpt")
    prepare([SHAKESPEARE], tmp_path / "char", tokenizer="char")
    assert sizing.effective_vocab_size(C.TrainConfig(data_dir=str(tmp_path / "gpt"))) == 50304
    assert sizing.effective_vocab_size(C.TrainConfig(data_dir=str(tmp_path / "char"))) == 65
