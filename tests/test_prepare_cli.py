"""`gpttui prepare` on the command line: messages, bad input, interruption."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_kit import SHAKESPEARE

from gpttui import cli
from gpttui.commands import EXIT_BAD_INPUT, EXIT_FAILED
from gpttui.commands import prepare as cmd
from gpttui.data.prepare import PrepareError, PrepareFailed, ProgressInfo, prepare

TEXT = SHAKESPEARE.read_text(encoding="utf-8")


def parquet(path: Path, texts: list, **columns) -> Path:
    pq.write_table(pa.table({"text": pa.array(texts, pa.string()), **columns}), path, row_group_size=20)
    return path


def docs(n: int, size: int = 400) -> list[str]:
    return [TEXT[i * size:(i + 1) * size] for i in range(n)]


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["prepare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_what_it_wrote_then_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = parquet(tmp_path / "a.parquet", docs(30) + [None, ""])
    code, out, err = run(capsys, src, "--out", tmp_path / "data", "--val-docs", "3")
    assert code == 0 and err == ""
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert f"train.bin {meta['tokens']['train']:,} tokens, val.bin {meta['tokens']['val']:,} tokens" in out
    assert "(27 / 3 documents)" in out and "2 null or empty texts skipped" in out
    assert "MB/s" in out and "tokens/s" in out
    code, out, err = run(capsys, src, "--out", tmp_path / "data", "--val-docs", "3")
    assert code == 0 and "is up to date" in out and "--force" in out
    code, out, err = run(capsys, src, "--out", tmp_path / "data", "--val-docs", "3", "--force")
    assert code == 0 and "wrote" in out


def test_counts_of_one_read_in_the_singular(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = _write(tmp_path / "ten.txt", b"abcdefghij")  # char: 9 train, 1 val
    code, out, _ = run(capsys, src, "--tokenizer", "char", "--out", tmp_path / "data")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"wrote {tmp_path / 'data'}: train.bin 9 tokens, val.bin 1 token, ")
    assert lines[1] == "1 document from 1 source" and lines[2].endswith(" 1 worker")
    assert lines[3].startswith("warning: val.bin holds 1 token, fewer than one 1,024-token block")
    code, out, _ = run(capsys, src, "--tokenizer", "char", "--out", tmp_path / "data")
    assert out.startswith(f"{tmp_path / 'data'} is up to date: meta.json matches this source and the options;")
    jsonl = _write(tmp_path / "a.jsonl", b'{"text": ""}\n{"text": "a b"}\n{"text": "c d"}\n')
    code, out, _ = run(capsys, jsonl, "--out", tmp_path / "jsonl")
    assert "2 documents from 1 source, 1 null or empty text skipped" in out.splitlines()
    monkeypatch.setattr(cmd, "PLAIN_EVERY", 0.0)
    monkeypatch.setattr("gpttui.data.prepare.PROGRESS_EVERY", 0.0)
    code, out, _ = run(capsys, src, "--out", tmp_path / "gpt2")
    assert "scanning characters: 100%, 1 document, 0 tokens," in out.splitlines()[0]


def test_plain_progress_lines_when_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmd, "PLAIN_EVERY", 0.0)
    monkeypatch.setattr("gpttui.data.prepare.PROGRESS_EVERY", 0.0)
    src = parquet(tmp_path / "a.parquet", docs(100))
    code, out, _ = run(capsys, src, "--out", tmp_path / "data")
    lines = [ln for ln in out.splitlines() if ln.startswith("tokenizing:")]
    assert code == 0 and len(lines) >= 3  # a row group of 20 documents at a time
    assert all(k in lines[-1] for k in ("100%", "100 documents", "tokens", "MB/s", "ETA"))


def test_rich_progress_shows_documents_tokens_rate() -> None:
    from rich.console import Console

    screen = io.StringIO()
    show = cmd._RichProgress(Console(file=screen, force_terminal=True, width=150))
    with show:
        show.update(ProgressInfo("tokenize", 1234, 0, 56789, 2_000_000, 0.5, 1.0, "a.parquet"))
        show.progress.refresh()
    text = screen.getvalue()
    for shown in ("tokenizing", "50%", "1,234 docs", "56,789 tokens", "2.0 MB/s", "ETA 1s"):
        assert shown in text


BAD = {
    "missing file": (lambda d: [d / "nope.parquet"], "nope.parquet: no such file or directory"),
    "empty glob": (lambda d: [str(d / "*.parquet")], "matches no .parquet, .txt or .jsonl files"),
    "empty directory": (lambda d: [d], "directory holds no .parquet, .txt or .jsonl files"),
    "unknown kind": (lambda d: [_write(d / "a.csv", b"a,b\n")], "a.csv: unknown file type"),
    "not parquet": (lambda d: [_write(d / "a.parquet", b"just text, really")], "a.parquet: not a parquet file"),
    "no such column": (lambda d: [parquet(d / "a.parquet", ["x"], body=["y"], url=["z"])],
                       "no column 'content' (columns: text, body, url; choose one with --text-column)"),
    "not strings": (lambda d: [_int_column(d / "a.parquet")], "column 'content' holds int64, expected strings"),
    "all empty": (lambda d: [parquet(d / "a.parquet", [None, "", None])],
                  "no documents: all 3 texts are empty or null"),
    "no rows": (lambda d: [parquet(d / "a.parquet", [])], "no documents: the sources hold no text"),
    "bad utf-8": (lambda d: [_write(d / "a.txt", "héllo\n".encode() * 3 + b"bad \xff byte")],
                  "a.txt: invalid UTF-8 at byte offset 25 (fix the file, or pass --errors replace)"),
    "bad utf-8 jsonl": (lambda d: [_write(d / "a.jsonl", b'{"content": "ok"}\n{"content": "\xc3("}\n')],
                        "a.jsonl: invalid UTF-8 at byte offset 31 (line 2)"),
    "bad json": (lambda d: [_write(d / "a.jsonl", b'{"content": "ok"}\n{"content": \n')],
                 "a.jsonl: line 2 is not JSON"),
    "deep json": (lambda d: [_write(d / "a.jsonl", b'{"content": "ok"}\n{"content": ' + b"[" * 100_000 + b"\n")],
                  "a.jsonl: line 2 is not JSON (maximum recursion depth exceeded"),
    "huge int json": (lambda d: [_write(d / "a.jsonl", b'{"content": "ok", "n": ' + b"9" * 5000 + b"}\n")],
                      "a.jsonl: line 1 is not JSON (Exceeds the limit (4300 digits)"),
    "jsonl no field": (lambda d: [_write(d / "a.jsonl", b'{"text": "ok", "id": 1}\n')],
                       "a.jsonl: line 1 has no field 'content' (fields: text, id;"),
    "one document": (lambda d: [parquet(d / "a.parquet", ["only one document"])],
                     "need at least 2 non-empty documents for a train and a val split, the input holds 1"),
    "one character": (lambda d: [_write(d / "a.txt", b"a")],
                      "1 character is too few for a train and a val split"),
    "one text, empty": (lambda d: [parquet(d / "a.parquet", [None])], "no documents: the one text is empty or null"),
    "too many val docs": (lambda d: [parquet(d / "a.parquet", ["a", "b", "c"]), "--val-docs", "3"],
                          "--val-docs 3 leaves no training documents (the input holds 3)"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _int_column(path: Path) -> Path:
    pq.write_table(pa.table({"content": [1, 2]}), path)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_nonzero_nothing_written(case: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    make, message = BAD[case]
    src = tmp_path / "src"
    src.mkdir()
    args = make(src)
    out = tmp_path / "data"
    column = [] if case in ("missing file", "empty glob", "empty directory", "unknown kind", "all empty", "no rows",
                            "bad utf-8", "one document", "one character", "one text, empty", "too many val docs",
                            "not parquet") else ["--text-column", "content"]
    code, stdout, err = run(capsys, *args, "--out", out, *column)
    assert code == EXIT_BAD_INPUT  # refused input (README's exit codes)
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not out.exists()  # a failed prepare leaves no empty directory behind


def test_output_directory_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "data").write_text("I am a file")
    code, _, err = run(capsys, SHAKESPEARE, "--out", tmp_path / "data")
    assert code == EXIT_BAD_INPUT
    assert err == f"error: {tmp_path / 'data'}: is a file, expected a directory for train.bin and val.bin\n"
    assert (tmp_path / "data").read_text() == "I am a file"


@pytest.mark.parametrize("out", ["", " "])
def test_an_empty_out_is_refused_not_the_current_directory(out: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, SHAKESPEARE, f"--out={out}")
    assert code == EXIT_BAD_INPUT
    assert err == "error: --out is empty: expected a directory for train.bin and val.bin\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("meta_json, present", [(None, ("train.bin", "val.bin", "meta.pkl")), (None, ("val.bin",)),
                                                ('{"vocab_size": 50304}', ("train.bin", "val.bin"))])
def test_data_not_made_by_gpttui_is_replaced_only_with_force(meta_json: str | None, present: tuple[str, ...],
                                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A nanoGPT data directory (its prepare.py writes no meta.json, another tool's is not ours)
    may hold hours of tokenizing."""
    out = tmp_path / "shakespeare_char"
    out.mkdir()
    for name in present:
        np.arange(1000, dtype=np.uint16).tofile(out / name)
    if meta_json is not None:
        (out / "meta.json").write_text(meta_json)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    src = _write(tmp_path / "a.txt", TEXT[:20_000].encode())
    code, _, err = run(capsys, src, "--out", out)
    names = ", ".join(present[:-1]) + " and " + present[-1] if len(present) > 1 else present[0]
    them = "them" if len(present) > 1 else "it"
    assert code == EXIT_BAD_INPUT
    assert err == (f"error: {out}: holds {names} not made by gpttui prepare (no meta.json of its); "
                   f"--force replaces {them}\n")
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    code, stdout, err = run(capsys, src, "--out", out, "--force")
    assert code == 0 and err == "" and stdout.startswith(f"wrote {out}")
    assert json.loads((out / "meta.json").read_text())["format"] == "gpttui-prepare/1"
    assert (out / "val.bin").read_bytes() != before["val.bin"]


def test_work_that_fails_exits_1_not_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args, **kwargs):
        raise PrepareFailed("a tokenizing worker process died (out of memory?): try fewer --workers")

    monkeypatch.setattr("gpttui.data.prepare.prepare", die)
    code, _, err = run(capsys, SHAKESPEARE, "--out", tmp_path / "data")
    assert code == EXIT_FAILED and err.startswith("error: a tokenizing worker process died")


def test_one_text_file_is_split_90_10_by_characters_as_nanogpt(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """nanoGPT's data/shakespeare/prepare.py: the first 90% of the characters train, the rest val,
    each tokenized on its own (gpttui ends the val text with <|endoftext|>, as every document)."""
    from gpttui.data.tokenizer import gpt2

    text = TEXT[:60_000].replace("\n\n", "\n")  # one text with no blank line
    src = _write(tmp_path / "input.txt", text.encode())
    enc, cut = gpt2(), int(len(text) * 0.9)
    for flags in ([], ["--split-blank-lines"]):
        out = tmp_path / f"data{len(flags)}"
        code, stdout, err = run(capsys, src, "--out", out, *flags)
        assert code == 0 and err == "", err
        assert np.fromfile(out / "train.bin", np.uint16).tolist() == enc.encode_ordinary(text[:cut])
        assert np.fromfile(out / "val.bin", np.uint16).tolist() == enc.encode_ordinary(text[cut:]) + [50256]
        meta = json.loads((out / "meta.json").read_text())
        assert meta["split"]["by"] == "characters" and meta["split"]["train_chars"] == cut
        assert "warning" not in stdout


def test_a_short_val_split_is_warned_about_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _write(tmp_path / "paras.txt", "".join(f"Paragraph {i} of the notes.\n\n" for i in range(2000)).encode())
    code, out, _ = run(capsys, src, "--out", tmp_path / "data", "--split-blank-lines")
    val = json.loads((tmp_path / "data" / "meta.json").read_text())["tokens"]["val"]
    assert code == 0 and 0 < val < 1024
    warning = (f"warning: val.bin holds {val:,} tokens, fewer than one 1,024-token block (a run needs more "
               "than block_size of them): raise --val-fraction (0.0005 now)")
    assert warning in out.splitlines()
    code, out, _ = run(capsys, src, "--out", tmp_path / "data", "--split-blank-lines")
    assert code == 0 and "is up to date" in out and warning in out.splitlines()  # said again: still true
    code, out, _ = run(capsys, src, "--out", tmp_path / "more", "--split-blank-lines", "--val-fraction", "0.2")
    assert code == 0 and "warning" not in out


def test_errors_replace_substitutes_u_fffd(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.txt").write_bytes(b"bad \xff byte")
    (tmp_path / "b.txt").write_bytes(b"fine")
    code, _, err = run(capsys, tmp_path / "a.txt", tmp_path / "b.txt", "--out", tmp_path / "data",
                       "--errors", "replace", "--val-docs", "1")
    assert code == 0, err
    from gpttui.data.tokenizer import gpt2

    assert np.fromfile(tmp_path / "data" / "train.bin", np.uint16).tolist() == \
        gpt2().encode_ordinary("bad \ufffd byte") + [50256]


def test_exception_mid_run_keeps_the_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = parquet(tmp_path / "a.parquet", docs(200))
    out = tmp_path / "data"
    prepare([src], out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    calls = []

    def cancel(p: ProgressInfo) -> None:
        calls.append(p)
        if len(calls) == 2:
            raise RuntimeError("cancelled by the UI")

    monkeypatch.setattr("gpttui.data.prepare.PROGRESS_EVERY", 0.0)
    with pytest.raises(RuntimeError, match="cancelled"):
        prepare([src], out, force=True, progress=cancel)
    fresh = tmp_path / "fresh"
    calls.clear()
    with pytest.raises(RuntimeError, match="cancelled"):
        prepare([src], fresh, progress=cancel)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # no partials, old files intact
    assert not fresh.exists()


def _start_slow_prepare(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A CLI run on ~40 MB of text with one worker: long enough to be caught mid-way even when
    its first bytes reach train.bin.partial late (the writes are buffered)."""
    big = [TEXT[i:i + 3000] for i in range(0, len(TEXT) - 3000, 997)] * 12
    src = parquet(tmp_path / "big.parquet", big)
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "gpttui", "prepare", str(src), "--out", str(out),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = out / "train.bin.partial"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return proc, out


def test_killed_run_leaves_no_train_bin(tmp_path: Path) -> None:
    proc, out = _start_slow_prepare(tmp_path)
    proc.kill()
    proc.wait()
    names = {p.name for p in out.iterdir()}
    assert "train.bin" not in names and "meta.json" not in names and "val.bin" not in names
    assert "train.bin.partial" in names  # clearly unfinished; the next run overwrites it


def test_ctrl_c_cleans_up_and_says_so(tmp_path: Path) -> None:
    proc, out = _start_slow_prepare(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == f"interrupted: nothing written to {out}"
    assert not out.exists()


def _workers_started(pid: int) -> int:
    import psutil

    started = 0
    for child in psutil.Process(pid).children():
        try:
            started += "spawn_main" in " ".join(child.cmdline())
        except psutil.Error:  # gone meanwhile
            pass
    return started


def test_ctrl_c_while_workers_start_is_one_line(tmp_path: Path) -> None:
    """A terminal's Ctrl+C reaches the whole process group: workers still importing their modules
    get it too, and a second one (timeout(1) sends it to the process and to its group) may reach
    the parent while it cleans up. Either way the user sees the one line, never a traceback."""
    src = _write(tmp_path / "big.txt", TEXT.encode() * 16)  # past PARALLEL_MIN_BYTES: two workers
    out = tmp_path / "data"
    for workers_seen, after_s, signals in ((1, 0.0, 1), (2, 0.0, 1), (2, 0.1, 2)):
        proc = subprocess.Popen([sys.executable, "-m", "gpttui", "prepare", str(src), "--out", str(out),
                                 "--split-blank-lines", "--workers", "2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 30
        while _workers_started(proc.pid) < workers_seen:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(after_s)
        for _ in range(signals):
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (130, f"interrupted: nothing written to {out}\n"), (workers_seen, after_s)
        assert not out.exists()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")   # no traceback from a thread either
def test_a_worker_that_dies_is_one_line_and_nothing_written(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr("gpttui.data.prepare.PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr("gpttui.data.prepare.PROGRESS_EVERY", 0.0)
    src = parquet(tmp_path / "a.parquet", docs(2000))

    def kill_a_worker(p: ProgressInfo) -> None:
        for child in psutil.Process().children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    child.kill()
                    return
            except psutil.Error:  # one already killed: a zombie until reaped
                pass

    with pytest.raises(PrepareError, match="a tokenizing worker process died"):
        prepare([src], tmp_path / "data", workers=2, progress=kill_a_worker)
    assert not (tmp_path / "data").exists()


def test_prepare_never_imports_torch() -> None:
    code = ("import sys; import gpttui.cli, gpttui.commands.prepare, gpttui.data.prepare; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
