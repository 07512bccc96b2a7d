"""Where `gpttui prepare` reads documents from: parquet, plain text and JSON-lines files.

`resolve` turns the user's paths, directories and globs into checked `Source`s before anything
is written (missing files, non-parquet files and missing text columns fail here, in one line).
`chunks` then streams a source as `Chunk`s of a few MB of text, so memory stays bounded
whatever the input size: parquet a row group at a time (never a whole table; row groups over
32 MB through `iter_batches`), text files block by block through an incremental UTF-8 decoder
that knows byte offsets, long documents cut where GPT-2's tokens don't change (`safe_cut`).
"""

from __future__ import annotations

import codecs
import functools
import glob
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

KINDS = {".parquet": "parquet", ".txt": "txt", ".jsonl": "jsonl"}
READ_BLOCK = 1 << 22  # bytes per read() of a text file
MAX_ROW_GROUP_BYTES = 32 << 20  # larger parquet row groups are cut into batches by the reader
# A blank line: a newline, then lines holding only whitespace, then a newline.
BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


class PrepareError(ValueError):
    """Bad input or options, phrased as one line for the user."""


@dataclass(frozen=True)
class Source:
    path: Path  # absolute
    kind: str  # parquet | txt | jsonl
    size: int
    mtime: float
    est_bytes: int  # expected text bytes, for progress (parquet: the column's uncompressed size)
    rows: int | None = None  # parquet rows

    def record(self) -> dict:
        """What meta.json keeps to tell whether a later run has the same inputs."""
        return {"path": str(self.path), "kind": self.kind, "size": self.size, "mtime": self.mtime}


@dataclass(frozen=True)
class RowGroup:
    """A parquet row group, read by the worker that tokenizes it: its text never goes through
    the main process (on 2 cores, every bit of main-process work slows the workers)."""

    path: Path
    index: int
    column: str


Texts = list[str] | pa.Array | RowGroup


@dataclass
class Chunk:
    """Consecutive documents of one source, ready to tokenize.

    With `open_end`, the last text is only part of a document (a long text file is cut at a
    point where tokenizing the parts gives the same tokens as the whole): the document goes on
    in the next chunk and gets no end-of-text token here.
    """

    texts: Texts
    open_end: bool
    skipped: int  # null or empty texts left out (a RowGroup's are counted when it is read)
    text_bytes: int
    units: float  # share of the source's est_bytes this chunk accounts for (progress)


def resolve(specs: Sequence[str | os.PathLike], text_column: str = "text") -> list[Source]:
    """Expand files, directories (recursively) and globs (with '**'), checking each file."""
    if not specs:
        raise PrepareError("no sources given (expected parquet, .txt or .jsonl files, directories or globs)")
    paths: list[Path] = []
    for spec in map(str, specs):
        spec = os.path.expanduser(spec)
        if not os.path.exists(spec) and re.search(r"[*?[]", spec):
            found = sorted(glob.glob(spec, recursive=True))
            files = [f for p in map(Path, found) for f in (_dir_files(p) if p.is_dir() else [p])]
            files = [f for f in files if f.suffix.lower() in KINDS]
            if not files:
                raise PrepareError(f"'{spec}' matches no .parquet, .txt or .jsonl files")
            paths += files
        elif os.path.isdir(spec):
            files = _dir_files(Path(spec))
            if not files:
                raise PrepareError(f"{spec}: directory holds no .parquet, .txt or .jsonl files")
            paths += files
        elif os.path.exists(spec):
            if Path(spec).suffix.lower() not in KINDS:
                raise PrepareError(f"{spec}: unknown file type (expected .parquet, .txt or .jsonl)")
            paths.append(Path(spec))
        else:
            raise PrepareError(f"{spec}: no such file or directory")
    seen: set[Path] = set()
    sources = []
    for p in paths:
        p = p.resolve()
        if p not in seen:
            seen.add(p)
            sources.append(_check(p, text_column))
    return sources


def _dir_files(d: Path) -> list[Path]:
    """Files of known kinds under d, sorted, skipping hidden files and directories (.cache …)."""
    return sorted(
        p for p in d.rglob("*")
        if p.is_file() and p.suffix.lower() in KINDS
        and not any(part.startswith(".") for part in p.relative_to(d).parts)
    )


def _check(path: Path, text_column: str) -> Source:
    st = path.stat()
    kind = KINDS[path.suffix.lower()]
    if kind == "parquet":
        try:
            with pq.ParquetFile(path) as pf:
                schema = pf.schema_arrow
                md = pf.metadata
        except (pa.ArrowInvalid, OSError) as e:
            raise PrepareError(f"{path}: not a parquet file ({_first_line(e)})") from None
        if text_column not in schema.names:
            raise PrepareError(f"{path}: no column '{text_column}' (columns: {', '.join(schema.names)}; "
                               "choose one with --text-column)")
        typ = schema.field(text_column).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)):
            raise PrepareError(f"{path}: column '{text_column}' holds {typ}, expected strings")
        col = schema.names.index(text_column)
        est = sum(md.row_group(i).column(col).total_uncompressed_size for i in range(md.num_row_groups))
        return Source(path, kind, st.st_size, st.st_mtime, est, md.num_rows)
    if kind == "jsonl":
        _check_jsonl_field(path, text_column)
    return Source(path, kind, st.st_size, st.st_mtime, st.st_size)


def _check_jsonl_field(path: Path, field: str) -> None:
    """The first record must be an object with the text field (later ones may lack it: skipped)."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if raw.strip():
                obj = _json_line(path, lineno, raw, "replace")
                if field not in obj:
                    raise PrepareError(f"{path}: line {lineno} has no field '{field}' "
                                       f"(fields: {', '.join(obj)}; choose one with --text-column)")
                return


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def chunks(src: Source, *, text_column: str, split_blank_lines: bool, errors: str,
           target_bytes: int) -> Iterator[Chunk]:
    """Stream a source as chunks of about target_bytes of text."""
    if src.kind == "parquet":
        return _parquet_chunks(src, text_column, target_bytes)
    if src.kind == "jsonl":
        return _jsonl_chunks(src, text_column, errors, target_bytes)
    if split_blank_lines:
        return _paragraph_chunks(src, errors, target_bytes)
    return _whole_file_chunks(src, errors, target_bytes)


def _parquet_chunks(src: Source, text_column: str, target_bytes: int) -> Iterator[Chunk]:
    """A row group per chunk, read by whoever tokenizes it; large ones in batches read here."""
    # pre_buffer=True (the default) keeps every row group read so far: memory would grow with the
    # file; buffer_size reads a big row group's pages as needed rather than its whole column chunk
    with pq.ParquetFile(src.path, pre_buffer=False, buffer_size=1 << 20) as pf:
        md = pf.metadata
        col = pf.schema_arrow.names.index(text_column)
        for i in range(md.num_row_groups):
            rows = md.row_group(i).num_rows
            size = md.row_group(i).column(col).total_uncompressed_size
            if size <= MAX_ROW_GROUP_BYTES:
                yield Chunk(RowGroup(src.path, i, text_column), False, 0, 0, size)
                continue
            batch_rows = max(1, target_bytes * rows // max(size, 1))
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[i], columns=[text_column],
                                         use_threads=False):
                kept, skipped, nbytes = _non_empty(batch.column(0))
                yield Chunk(kept, False, skipped, nbytes, size * batch.num_rows / rows)


def _non_empty(arr: pa.Array) -> tuple[pa.Array, int, int]:
    """(texts without nulls and empty strings, how many were dropped, text bytes)."""
    lengths = pc.binary_length(arr)
    # filter() also gives the array its own buffers: a slice would pickle its parent's
    kept = arr.filter(pc.fill_null(pc.greater(lengths, 0), False))
    return kept, len(arr) - len(kept), pc.sum(lengths).as_py() or 0


@functools.lru_cache(maxsize=1)
def _parquet_file(path: Path, mtime: float) -> pq.ParquetFile:
    return pq.ParquetFile(path, pre_buffer=False)


def materialize(texts: Texts) -> tuple[list[str], int, int]:
    """A chunk's texts as strings, with the null/empty texts dropped here and the text bytes read."""
    if isinstance(texts, RowGroup):
        try:
            pf = _parquet_file(texts.path, texts.path.stat().st_mtime)
            table = pf.read_row_group(texts.index, columns=[texts.column], use_threads=False)
        except pa.ArrowException as e:
            raise PrepareError(f"{texts.path}: row group {texts.index} unreadable ({_first_line(e)})") from None
        kept, skipped, nbytes = _non_empty(table.column(0).combine_chunks())
        return kept.to_pylist(), skipped, nbytes
    if isinstance(texts, pa.Array):
        return texts.to_pylist(), 0, 0
    return texts, 0, 0


def _decoded_blocks(path: Path, errors: str) -> Iterator[tuple[str, int]]:
    """(text, raw bytes read) per block; invalid UTF-8 names the file and byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    pos = 0
    with path.open("rb") as f:
        while True:
            block = f.read(READ_BLOCK)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise PrepareError(f"{path}: invalid UTF-8 at byte offset {pos - pending + e.start} "
                                   "(fix the file, or pass --errors replace)") from None
            pos += len(block)
            yield text, len(block)
            if not block:
                return


def safe_cut(text: str) -> int:
    """An index where text can be cut so that GPT-2 tokens of the parts equal those of the whole.

    GPT-2's pre-tokenizer never lets a piece run past a non-space character followed by
    whitespace, nor start a piece inside whitespace followed by a non-space one. So the text
    can be cut after a newline, or before a space, that has non-space characters on both sides:
    the pieces are the same whether or not more text follows. Returns -1 if there is no such place.
    """
    for sep, after in (("\n", 1), (" ", 0)):
        j = text.rfind(sep, 0, len(text) - 1)
        while j > 0:
            if not text[j - 1].isspace() and not text[j + 1].isspace():
                return j + after
            j = text.rfind(sep, 0, j)
    return -1


def _whole_file_chunks(src: Source, errors: str, target_bytes: int) -> Iterator[Chunk]:
    """One document per file; a large file is cut at safe places into open-ended chunks."""
    buf, nbytes = "", 0
    for text, n in _decoded_blocks(src.path, errors):
        buf += text
        nbytes += n
        if len(buf) >= target_bytes and (cut := safe_cut(buf)) > 0:
            yield Chunk([buf[:cut]], True, 0, nbytes, nbytes)
            buf, nbytes = buf[cut:], 0
    if buf:
        yield Chunk([buf], False, 0, nbytes, nbytes)
    else:
        yield Chunk([], False, 1, 0, 0)  # an empty file: an empty document, skipped


def _paragraph_chunks(src: Source, errors: str, target_bytes: int) -> Iterator[Chunk]:
    """Documents separated by blank lines; each stripped of its surrounding newlines.

    A separator is used only once a non-space character follows it, so where the blocks
    happen to end never changes the documents. A paragraph longer than 4 blocks is cut at a
    safe place and carried on as an open-ended document.
    """
    docs: list[str] = []
    carry, nbytes, doc_bytes = "", 0, 0
    open_doc = False  # carry continues a document already partly emitted
    for text, n in _decoded_blocks(src.path, errors):
        final = not n
        carry += text
        nbytes += n
        start = 0
        text_end = len(carry.rstrip())  # a separator must end before this to be complete
        for m in BLANK_LINES.finditer(carry):
            if not final and m.end() >= text_end:
                break  # the blank run may go on in the next block
            para = carry[start:m.start()]
            para = para.rstrip("\r\n") if open_doc else para.strip("\r\n")
            if para.strip() or open_doc:
                docs.append(para)
                doc_bytes += len(para)
            open_doc = False
            start = m.end()
        carry = carry[start:]
        if final:
            last = carry.rstrip("\r\n") if open_doc else carry.strip("\r\n")
            if last.strip() or open_doc:
                docs.append(last)
            yield Chunk(docs, False, 0, nbytes, nbytes)
            return
        if len(carry) > 4 * READ_BLOCK and (cut := safe_cut(carry)) > 0:
            piece = carry[:cut] if open_doc else carry[:cut].lstrip("\r\n")
            yield Chunk(docs + [piece], True, 0, nbytes, nbytes)
            docs, carry, nbytes, doc_bytes, open_doc = [], carry[cut:], 0, 0, True
        elif doc_bytes >= target_bytes and not open_doc:
            yield Chunk(docs, False, 0, nbytes, nbytes)
            docs, nbytes, doc_bytes = [], 0, 0


def _json_line(path: Path, lineno: int, raw: bytes, errors: str, offset: int | None = None) -> dict:
    try:
        line = raw.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        at = f"byte offset {offset + e.start} (line {lineno})" if offset is not None else f"line {lineno}"
        raise PrepareError(f"{path}: invalid UTF-8 at {at} (fix the file, or pass --errors replace)") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise PrepareError(f"{path}: line {lineno} is not JSON ({e.msg} at column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # an integer of thousands of digits; nesting too deep
        raise PrepareError(f"{path}: line {lineno} is not JSON ({_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise PrepareError(f"{path}: line {lineno} is {type(obj).__name__}, expected a JSON object")
    return obj


def _jsonl_chunks(src: Source, field: str, errors: str, target_bytes: int) -> Iterator[Chunk]:
    docs: list[str] = []
    skipped = nbytes = 0
    offset = 0
    with src.path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            nbytes += len(raw)
            if not raw.strip():
                continue
            value = _json_line(src.path, lineno, raw, errors, start).get(field)
            if value is None or value == "":
                skipped += 1
            elif not isinstance(value, str):
                raise PrepareError(f"{src.path}: line {lineno}: field '{field}' holds "
                                   f"{type(value).__name__}, expected a string")
            else:
                docs.append(value)
            if nbytes >= target_bytes:
                yield Chunk(docs, False, skipped, nbytes, nbytes)
                docs, skipped, nbytes = [], 0, 0
    yield Chunk(docs, False, skipped, nbytes, nbytes)
