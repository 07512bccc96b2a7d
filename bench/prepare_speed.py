"""Throughput and peak memory of `gpttui prepare` vs a plain single-process loop.

    python bench/prepare_speed.py                       # 300 MB speed runs, memory at 100 MB and 1.2 GB
    python bench/prepare_speed.py --speed-mb 100 --runs 3 --mem-mb 50,200 --stream-mb 200

Builds FineWeb-schema parquet files (text, id, dump, url, date, file_path, language,
language_score, token_count; row groups of 1000 documents, snappy) from real text:
tiny Shakespeare, the Python standard library's sources and /usr/share/doc. Every document
is 1-3 windows of random length (log-normal, median ~2 kB like web pages) at random
offsets in random corpus files, so no two documents are the same string.

First the GPT-2 encoders on one thread, the same documents: MB/s against tiktoken and how many
documents' ids are identical; then each encoder's RSS over a long stream of distinct documents.

Then, in the same run and alternating so both see the same machine load:
- plain: `pq.read_table(path, columns=["text"])`, then `encode_ordinary` + 50256 per document
  in one process, written as one uint16 file (the loop people write by hand);
- gpttui: `gpttui prepare PATH --out DIR --force` (all cores by default).
Both run as subprocesses, timed from start to exit (imports and worker start-up included).
Peak RSS is the whole process tree's (parent + workers) sampled every 20 ms. "others" is
the CPU other processes used during the run, in cores (the machine is shared). Linux's
autogroup scheduling shares CPU between sessions, not processes: when other sessions keep
the cores busy, gpttui's workers together get about the share one process would, so the
wall-clock ratio only shows on idle cores. The CPU-time ratio is printed for that reason.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT / "gpttui" / "assets" / "tinyshakespeare.txt"
ROWS_PER_GROUP = 1000

PLAIN_LOOP = """
import sys, time, numpy as np, pyarrow.parquet as pq
from gpttui.data.tokenizer import gpt2
enc = gpt2()
texts = pq.read_table(sys.argv[1], columns=["text"]).column("text").to_pylist()
parts = []
for t in texts:
    if t:
        ids = enc.encode_ordinary(t)
        ids.append(enc.eot_token)
        parts.append(np.array(ids, dtype=np.uint16))
out = np.concatenate(parts)
out.tofile(sys.argv[2])
print(len(out))
"""


def corpus() -> list[str]:
    """Real text: Shakespeare, stdlib sources, /usr/share/doc (about 100-200 MB)."""
    texts = [SHAKESPEARE.read_text(encoding="utf-8")]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    files += sorted(p for p in Path("/usr/share/doc").rglob("*") if p.suffix in ("", ".txt", ".md")
                    and p.is_file() and not p.is_symlink())
    for p in files:
        try:
            t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if len(t) > 2000:
            texts.append(t)
    # Shakespeare is prose; give it weight comparable to the code
    return texts + [texts[0]] * 20


def build_parquet(path: Path, mb: int, seed: int) -> tuple[int, int]:
    """A FineWeb-schema parquet with about mb MB of text. Returns (documents, text bytes)."""
    rng = random.Random(seed)
    texts = corpus()
    schema = pa.schema([("text", pa.string()), ("id", pa.string()), ("dump", pa.string()),
                        ("url", pa.string()), ("date", pa.string()), ("file_path", pa.string()),
                        ("language", pa.string()), ("language_score", pa.float64()),
                        ("token_count", pa.int64())])
    target = mb * 1_000_000
    ndocs = nbytes = 0
    with pq.ParquetWriter(path, schema, compression="snappy") as w:
        while nbytes < target:
            rows: dict[str, list] = {k: [] for k in schema.names}
            for _ in range(ROWS_PER_GROUP):
                parts = []
                for _ in range(rng.choice((1, 1, 2, 3))):
                    src = rng.choice(texts)
                    n = min(int(rng.lognormvariate(7.2, 1.0)), len(src), 100_000)
                    at = rng.randrange(0, len(src) - n + 1)
                    parts.append(src[at:at + n])
                doc = "\n\n".join(parts)
                b = len(doc.encode("utf-8"))
                nbytes += b
                ndocs += 1
                rows["text"].append(doc)
                rows["id"].append(f"<urn:uuid:{rng.getrandbits(128):032x}>")
                rows["dump"].append("CC-MAIN-2013-20")
                rows["url"].append(f"http://example.org/{rng.getrandbits(40):x}.html")
                rows["date"].append("2013-05-18T05:48:54Z")
                rows["file_path"].append("s3://commoncrawl/crawl-data/CC-MAIN-2013-20/segments/"
                                         f"{rng.getrandbits(32)}/warc/CC-MAIN-{ndocs:08d}.warc.gz")
                rows["language"].append("en")
                rows["language_score"].append(round(rng.uniform(0.65, 1.0), 4))
                rows["token_count"].append(b // 4)  # approximate; not used by anything here
            w.write_table(pa.table(rows, schema=schema))
    return ndocs, nbytes


@dataclass
class Measure:
    seconds: float
    peak_rss: int  # bytes, whole process tree
    tokens: int
    cpu: float  # CPU seconds of the process tree
    others: float  # cores used by other processes during the run


def run_measured(argv: list[str]) -> tuple[Measure, str]:
    """Run argv; sample the tree's RSS; account the CPU others used meanwhile."""
    cpu0 = psutil.cpu_times()
    ours0 = os.times()
    t0 = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    dt = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{argv[:3]} failed ({proc.returncode}):\n{err}")
    cpu1 = psutil.cpu_times()
    ours1 = os.times()
    busy = (sum(cpu1) - cpu1.idle - getattr(cpu1, "iowait", 0)) - (sum(cpu0) - cpu0.idle - getattr(cpu0, "iowait", 0))
    ours = (ours1.children_user + ours1.children_system) - (ours0.children_user + ours0.children_system)
    return Measure(dt, peak, 0, ours, max(0.0, (busy - ours) / dt)), out


def plain(parquet: Path, work: Path) -> Measure:
    m, out = run_measured([sys.executable, "-c", PLAIN_LOOP, str(parquet), str(work / "plain.bin")])
    m.tokens = int(out.split()[-1])
    return m


def gpttui(parquet: Path, work: Path, workers: int | None) -> Measure:
    argv = [sys.executable, "-m", "gpttui", "prepare", str(parquet), "--out", str(work / "out"), "--force"]
    if workers:
        argv += ["--workers", str(workers)]
    m, _ = run_measured(argv)
    meta = json.loads((work / "out" / "meta.json").read_text())
    m.tokens = meta["tokens"]["train"] + meta["tokens"]["val"]
    return m


CANDIDATES = r"""
import sys, time, json, pyarrow.parquet as pq
from gpttui.data.tokenizer import GPT2_RANKS, gpt2, gpt2_encoder
ref = gpt2()
texts = [t for t in pq.read_table(sys.argv[1], columns=["text"]).column("text").to_pylist() if t]
encoders = {"tiktoken": ref.encode_ordinary}
try:
    import riptoken
    encoders["riptoken"] = riptoken.CoreBPE(ref._mergeable_ranks, ref._special_tokens, ref._pat_str).encode_ordinary
except ImportError:
    pass
try:
    import gigatoken
    encoders["gigatoken"] = gigatoken.Tokenizer.from_tiktoken(str(GPT2_RANKS)).encode
except ImportError:
    pass
encoders["gpttui"] = gpt2_encoder()[0]  # what prepare uses: gigatoken with its checks, or tiktoken
want = [ref.encode_ordinary(t) for t in texts]
for name, enc in encoders.items():
    times = []
    for _ in range(int(sys.argv[2])):
        t0 = time.perf_counter()
        try:
            got = [enc(t) for t in texts]
        except Exception as e:
            got, times = None, [type(e).__name__ + ": " + str(e)[:80]]
            break
        times.append(time.perf_counter() - t0)
    same = sum(list(a) == b for a, b in zip(got, want)) if got is not None else 0
    print(json.dumps({"name": name, "times": times, "same": same, "docs": len(texts)}))
"""


def candidates(path: Path, nbytes: int, runs: int) -> None:
    """One process, one thread, the same documents: each installed GPT-2 encoder against tiktoken
    (bpe-openai is left out: it downloads the ranks instead of taking the bundled file)."""
    out = subprocess.run([sys.executable, "-c", CANDIDATES, str(path), str(runs)], capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}, check=True)
    rows = [json.loads(s) for s in out.stdout.splitlines()]
    base = statistics.median(rows[0]["times"])
    print(f"encoders, one thread, {nbytes / 1e6:.0f} MB, median of {runs}:")
    for r in rows:
        if isinstance(r["times"][0], str):
            print(f"  {r['name']:<10} failed: {r['times'][0]}")
            continue
        t = statistics.median(r["times"])
        print(f"  {r['name']:<10} {nbytes / 1e6 / t:6.1f} MB/s  {base / t:5.2f}x tiktoken  "
              f"identical ids on {r['same']}/{r['docs']} documents")


STREAM = r"""
import random, sys, sysconfig, psutil
from pathlib import Path
from gpttui.data.tokenizer import GPT2_RANKS, gpt2, gpt2_encoder
name, mb = sys.argv[1], int(sys.argv[2])
stdlib = Path(sysconfig.get_paths()["stdlib"])
src = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.rglob("*.py"))
       if "site-packages" not in p.parts]
if name == "tiktoken":
    enc = gpt2().encode_ordinary
elif name == "gigatoken":
    import gigatoken
    enc = gigatoken.Tokenizer.from_tiktoken(str(GPT2_RANKS)).encode
else:
    enc = gpt2_encoder()[0]
rng, proc = random.Random(0), psutil.Process()
done, marks, peak = 0, [proc.memory_info().rss], 0
while done < mb * 1_000_000:
    s = rng.choice(src)
    n = min(len(s), int(rng.lognormvariate(8, 1)))
    at = rng.randrange(0, len(s) - n + 1)
    words = s[at:at + n].split(" ")
    for _ in range(len(words) // 8 + 1):  # new identifiers and numbers: pieces no cache has seen
        words.insert(rng.randrange(len(words) + 1), "%s%x" % (rng.choice("abcxyz_"), rng.getrandbits(rng.choice((16, 32, 48)))))
    doc = " ".join(words)
    enc(doc)
    done += len(doc)
    if done * 10 // (mb * 1_000_000) >= len(marks):
        marks.append(proc.memory_info().rss)
print(" ".join(str(m >> 20) for m in marks))
"""


def stream_memory(mb: int) -> None:
    """RSS of one process encoding mb MB of distinct documents: stdlib windows with new identifiers
    and numbers spliced in, so the stream keeps bringing pieces no cache has seen (as web text does)."""
    print(f"encoder RSS over a {mb} MB stream of distinct documents (MiB at start, then every {mb // 10} MB):")
    for name in ("tiktoken", "gigatoken", "gpttui"):
        out = subprocess.run([sys.executable, "-c", STREAM, name, str(mb)], capture_output=True, text=True,
                             env={**os.environ, "RAYON_NUM_THREADS": "1"}, check=True).stdout.split()
        label = {"gigatoken": "gigatoken (one encoder)", "gpttui": "gpttui (gigatoken, rebuilt)"}.get(name, name)
        print(f"  {label:<28} peak {max(map(int, out)):5d} MiB: {' '.join(out)}")


def line(name: str, ms: list[Measure], nbytes: int) -> str:
    secs = statistics.median(m.seconds for m in ms)
    return (f"  {name:<8} {nbytes / 1e6 / secs:7.1f} MB/s  {ms[0].tokens / secs / 1e6:6.2f}M tokens/s  "
            f"median {secs:6.1f} s of {[round(m.seconds, 1) for m in ms]}  "
            f"peak RSS {max(m.peak_rss for m in ms) / 2**20:6.0f} MiB  "
            f"CPU {statistics.median(m.cpu for m in ms):6.1f} s  "
            f"others {statistics.median(m.others for m in ms):.2f} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speed-mb", type=int, default=300, help="text size for the speed runs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mem-mb", default="100,1200", help="text sizes for the memory runs ('' for none)")
    ap.add_argument("--workers", type=int, default=None, help="passed to gpttui prepare")
    ap.add_argument("--workdir", default=None, help="where the parquet files go (default: a temp dir)")
    ap.add_argument("--candidates-mb", type=int, default=20, help="text size for the encoder comparison (0: none)")
    ap.add_argument("--stream-mb", type=int, default=400, help="text size for the encoders' memory stream (0: none)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpttui-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f} at start; files in {work}")

    path = work / f"fineweb_{args.speed_mb}mb.parquet"
    t = time.time()
    ndocs, nbytes = build_parquet(path, args.speed_mb, seed=1)
    print(f"built {path.name}: {ndocs:,} documents, {nbytes / 1e6:.0f} MB of text, "
          f"{path.stat().st_size / 1e6:.0f} MB on disk ({time.time() - t:.0f} s)")
    if args.candidates_mb:
        cpath = work / f"candidates_{args.candidates_mb}mb.parquet"
        _, cbytes = build_parquet(cpath, args.candidates_mb, seed=2)
        candidates(cpath, cbytes, args.runs)
        cpath.unlink()
    if args.stream_mb:
        stream_memory(args.stream_mb)
    results: dict[str, list[Measure]] = {"plain": [], "gpttui": []}
    for _ in range(args.runs):
        results["plain"].append(plain(path, work))
        results["gpttui"].append(gpttui(path, work, args.workers))
    print(f"speed on {nbytes / 1e6:.0f} MB, {args.runs} runs each:")
    print(line("plain", results["plain"], nbytes))
    print(line("gpttui", results["gpttui"], nbytes))
    ratio = (statistics.median(m.seconds for m in results["plain"])
             / statistics.median(m.seconds for m in results["gpttui"]))
    cpu_ratio = (statistics.median(m.cpu for m in results["gpttui"])
                 / statistics.median(m.cpu for m in results["plain"]))
    print(f"  ratio gpttui/plain: {ratio:.2f}x (target >= 3x on 2 cores); gpttui spends "
          f"{cpu_ratio:.2f}x the plain loop's CPU time, so on idle cores the ratio would be about "
          f"{(args.workers or len(os.sched_getaffinity(0))) / cpu_ratio:.2f}x")
    if results["plain"][0].tokens != results["gpttui"][0].tokens:
        print(f"  WARNING: token counts differ: plain {results['plain'][0].tokens} "
              f"vs gpttui {results['gpttui'][0].tokens}")
    path.unlink()

    if args.mem_mb:
        print("peak RSS as the input grows (one run each):")
    for mb in [int(x) for x in args.mem_mb.split(",") if x]:
        p = work / f"fineweb_{mb}mb.parquet"
        _, nb = build_parquet(p, mb, seed=mb)
        g = gpttui(p, work, args.workers)
        pl = plain(p, work)
        print(f"  {nb / 1e6:6.0f} MB text ({p.stat().st_size / 1e6:.0f} MB parquet): "
              f"gpttui {g.peak_rss / 2**20:5.0f} MiB in {g.seconds:5.1f} s, "
              f"plain {pl.peak_rss / 2**20:5.0f} MiB in {pl.seconds:5.1f} s, "
              f"others {max(g.others, pl.others):.2f} cores")
        p.unlink()
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
