"""Hostile lines in metrics.jsonl, a nanoGPT log, engine.json and the control socket, through the
real commands: `gpttui doctor`, `gpttui export` (csv, parquet, jsonl), `gpttui attach --status`
and the `gpttui open` dashboard (headless). Every field of every event type gets every wrong
type and out-of-range value; none may crash a command, and the good lines must still count.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import engine_kit
import pytest

from gpttui.app import GpttuiApp
from gpttui.run import config as C
from gpttui.run import protocol
from gpttui.run.history import load_run
from gpttui.screens.dashboard import DashboardScreen
from gpttui.viewer import ReadOnlyRuns

GOOD_STEPS = 30
GOOD_EVALS = (0, 10, 20)
LAST = GOOD_STEPS - 1
BIG = "x" * 1_000_000      # a 1 MB string

# One well-formed event of every type; the fuzz replaces one field at a time.
TEMPLATES: dict[str, dict] = {
    "hello": dict(version=1, config={"n_layer": 2, "max_iters": 30, "device": "cpu"},
                  params={"total": 1000, "nanogpt": 900, "non_embedding": 800}, device="cpu",
                  device_name="a CPU", dtype="float32", dtype_reason="asked", peak_flops=1e12,
                  tokens_per_iter=64, start_iter=GOOD_STEPS, max_iters=30, world_size=1, run_dir="/r",
                  pid=1, threads=2),
    "step": dict(loss=2.0, lr=1e-3, dt_ms=10.0, tokens_per_s=6400.0, mfu=0.3, grad_norm=1.0, tokens=64),
    "eval": dict(train_loss=2.0, val_loss=2.1, best_val_loss=2.1),
    "checkpoint": dict(path="/r/ckpt.pt", val_loss=2.1),
    "state": dict(state="running", reason="why"),
    "config": dict(changes={"max_iters": 30}),
    "log": dict(message="hi", ready=True, params=10),
    "error": dict(message="boom", traceback="Traceback ..."),
    "token": dict(text="a", sample=0, prompt=True),
    "sample_done": dict(text="ab", sample=0, tokens=2, seconds=0.1, stopped=False),
    "progress": dict(done=1, total=2),
    "brand_new_type": dict(whatever=1),
}
NAN, INF = float("nan"), float("inf")
BAD_VALUES = [None, True, "3", "", -1, -1.5, 2**63, 99999999999999999999999, 1e308, NAN, INF, -INF,
              {"nested": {"deep": [1, {"x": None}]}}, [1, [2, [3]]], "\x1b]0;pwned\x07\x1b[2J", "\udcff"]
# Values that pass the checks but sit at their edges: they reach every consumer.
EDGE_VALUES = [0, 0.0, 5e-324, -5e-324, 1e-30, 1e30, -1e30, 2**53 - 1, "", " ", "x" * 256]
BIG_FIELDS = {("hello", "device"), ("hello", "device_name"), ("log", "message"), ("state", "state"),
              ("checkpoint", "path"), ("error", "message"), ("hello", "config")}


def hostile_lines() -> list[bytes]:
    """Every field of every type with every bad value, then lines that are not events at all."""
    lines: list[bytes] = []
    for kind, fields in TEMPLATES.items():
        base = {"type": kind, "iter": LAST, "t": 1_800_000_000.0, **fields}
        for name in [*base, "extra"]:
            values = BAD_VALUES + ([BIG] if (kind, name) in BIG_FIELDS else [])
            if name == "config" or name == "changes":
                values = values + [{"n_layer": v} for v in BAD_VALUES] + [{"device": BIG}, {BIG: 1}]
            if name == "params":
                values = values + [{"total": v} for v in BAD_VALUES]
            for v in values:
                lines.append(json.dumps({**base, name: v}).encode())
        lines.append(json.dumps({k: v for k, v in base.items() if k != "iter"}).encode())
    text = json.dumps({"type": "step", "iter": 3, "loss": 1.0, "lr": 1e-3})
    lines += [text[: len(text) // 2].encode(), text[:-1].encode(), b"\xff\xfe\x00garbage\x80\x81",
              bytes(range(256)).replace(b"\n", b""), b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000,
              b"{}", b"[]", b"null", b"42", b'"step"', b'{"type": 1, "iter": 0}', b'{"type": "STEP", "iter": 0}',
              b'{"type": "step", "iter": 1' + b"0" * 5000 + b', "loss": 1.0}',
              b'{"type": "step", "iter": 0, "loss": 1e999}', b'{"type": "step", "iter": 0, "loss": NaN}']
    return lines


def edge_lines() -> list[bytes]:
    """Every field of every type at each edge value (the line may then be refused or not)."""
    lines = []
    for kind, fields in TEMPLATES.items():
        base = {"type": kind, "iter": LAST, "t": 1_800_000_000.0, **fields}
        for name in base:
            for v in EDGE_VALUES:
                lines.append(json.dumps({**base, name: v}).encode())
    return lines


def good_events() -> list[dict]:
    cfg = C.replace(C.DEFAULTS, n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4,
                    max_iters=GOOD_STEPS, lr_decay_iters=GOOD_STEPS, warmup_iters=2, eval_interval=10,
                    device="cpu", dtype="float32", compile=False)
    t0 = 1_800_000_000.0
    evs = [dict(protocol.event("hello", 0, version=1, config=cfg.to_dict(),
                               params={"total": 60_000, "nanogpt": 59_000, "non_embedding": 40_000},
                               device="cpu", device_name="a CPU", dtype="float32", peak_flops=1e12,
                               tokens_per_iter=64, start_iter=0, max_iters=GOOD_STEPS, world_size=1), t=t0)]
    for i in range(GOOD_STEPS):
        if i in GOOD_EVALS:
            evs.append(dict(protocol.event("eval", i, train_loss=3.0 - i / 20, val_loss=3.1 - i / 20), t=t0 + i))
            evs.append(dict(protocol.event("checkpoint", i, path="/r/ckpt.pt", val_loss=3.1 - i / 20), t=t0 + i))
        evs.append(dict(protocol.event("step", i, loss=3.0 - i / 20, lr=1e-3, dt_ms=10.0, tokens_per_s=6400.0,
                                       mfu=0.01, grad_norm=1.0, tokens=(i + 1) * 64), t=t0 + i + 0.5))
    evs.append(dict(protocol.event("state", LAST, state="finished"), t=t0 + GOOD_STEPS))
    return evs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two run directories: hostile lines before the good run (whose hello, starting at 0,
    replaces whatever they left), and hostile lines after it (each consumer meets every
    surviving value last)."""
    good = [protocol.encode(e).encode() for e in good_events()]
    bad = hostile_lines()
    out = {}
    for where, lines in (("before", bad + good), ("after", good + bad), ("edges", good + edge_lines())):
        rd = tmp_path_factory.mktemp(where)
        (rd / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        cfg = C.replace(C.DEFAULTS, n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4,
                        max_iters=GOOD_STEPS, device="cpu", out_dir=str(rd))
        C.save(cfg, rd / "config.toml")
        out[where] = rd
    return out


def gpttui(*args: str) -> subprocess.CompletedProcess:
    """engine_kit's runner, the output in UTF-8 whatever the locale (the logs hold any character)."""
    return engine_kit.gpttui(*args, env={"PYTHONIOENCODING": "utf-8"}, timeout=300)


def no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr[-3000:]


def test_the_fuzz_has_what_it_claims():
    lines = hostile_lines()
    assert len(lines) > 1000
    assert any(len(line) > 1_000_000 for line in lines) and b"99999999999999999999999" in b"".join(lines)


@pytest.mark.parametrize("where", ["before", "after"])
def test_history_keeps_every_good_line_and_counts_the_bad(runs, where):
    h = load_run(runs[where])
    assert [s.iter for s in h.steps] == list(range(GOOD_STEPS))
    assert [e.iter for e in h.evals][:3] == list(GOOD_EVALS)
    assert h.skipped_lines > 500 and h.repaired_lines > 100
    assert h.lines == len(hostile_lines()) + len(good_events())
    if where == "before":  # the good run's own hello started the history afresh
        assert h.device["device"] == "cpu" and h.mfu_peak == 1e12 and h.tokens_seen == GOOD_STEPS * 64
        assert [e.iter for e in h.evals] == list(GOOD_EVALS) and h.state == "finished"


def test_values_at_the_edges_of_their_range_crash_nothing(runs, tmp_path):
    rd = runs["edges"]
    for args in (["doctor", str(rd)], ["doctor", str(rd), "--json"], ["doctor", str(rd), "--until", "10"],
                 *(["export", str(rd), "-o", str(tmp_path / f"s.{fmt}"), "--chart", str(tmp_path / "c.html")]
                   for fmt in ("csv", "parquet", "jsonl"))):
        p = gpttui(*args)
        no_traceback(p)
        assert p.returncode == 0, (args, p.stderr[-2000:])


@pytest.mark.parametrize("where", ["before", "after"])
def test_doctor_reads_through_and_says_how_many_lines_it_skipped(runs, where):
    p = gpttui("doctor", str(runs[where]))
    no_traceback(p)
    assert p.returncode == 0, p.stderr
    h = load_run(runs[where])
    assert f"{h.skipped_lines} torn or garbled lines skipped of {h.lines}" in p.stdout
    assert f"{h.repaired_lines} line(s) read without fields that held bad values" in p.stdout
    p = gpttui("doctor", str(runs[where]), "--json")
    no_traceback(p)
    assert p.returncode == 0
    report = json.loads(p.stdout)
    assert report["last_iter"] == LAST and report["skipped_lines"] == h.skipped_lines


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_export_writes_every_good_step(runs, where, fmt, tmp_path):
    out = tmp_path / f"steps.{fmt}"
    p = gpttui("export", str(runs[where]), "-o", str(out), "--format", fmt)
    no_traceback(p)
    assert p.returncode == 0, p.stderr
    if fmt == "csv":
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [r for r in rows if r.get("loss") not in ("", None)]
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        steps = [r for r in rows if r.get("loss") is not None]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
        steps = [r for r in rows if r.get("loss") is not None]
    assert sorted({int(r["iter"]) for r in steps}) == list(range(GOOD_STEPS))
    assert f"{GOOD_STEPS} steps" in p.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_attach_status_reads_the_run_and_exits_1_for_no_engine(runs, where):
    p = gpttui("attach", str(runs[where]), "--status")
    no_traceback(p)
    assert p.returncode == 1 and f"no engine is running in {runs[where]}" in p.stdout


ENGINE_JSON_BAD = [
    "[1, 2]", "null", '"x"', "{" * 10_000, "\xff",
    json.dumps({"pid": "1", "host": 3, "started": "x", "heartbeat": None}),
    json.dumps({"pid": 2**70, "host": "h", "started": 1e308, "heartbeat": -1, "state": ["running"]}),
    json.dumps({"pid": 1, "host": "h", "started": 1.0, "heartbeat": 1.0, "state": {"a": 1}, "iter": 1e999,
                "exit_code": "0", "socket": 5, "reason": BIG}),
]


@pytest.mark.parametrize("text", ENGINE_JSON_BAD, ids=range(len(ENGINE_JSON_BAD)))
def test_attach_status_survives_a_hostile_engine_json(runs, text, tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "config.toml").write_bytes((runs["after"] / "config.toml").read_bytes())
    (rd / "engine.json").write_text(text, errors="surrogateescape")
    p = gpttui("attach", str(rd), "--status")
    no_traceback(p)
    assert p.returncode == 1 and len(p.stdout.splitlines()) == 1   # "no engine ..." or "... died ..."
    assert "no engine is running" in p.stdout or "died while" in p.stdout

FIXTURE_LOG = Path(__file__).resolve().parents[1] / "fixtures" / "nanogpt" / "train_log_fineweb_40m.txt"
# Lines shaped like nanoGPT's, with numbers and text no run prints (and config echoes that would
# take the machine's memory to evaluate).
HOSTILE_LOG = [
    "iter 99999999999999999999999: loss 1.0000, time 10.00ms, mfu 1.00%",
    "step 99999999999999999999999: train loss 1.0000, val loss 1.0000",
    "iter 5: loss inf, time infms, mfu nan%",
    "iter 6: loss nan, time -5.00ms, mfu -inf%",
    "iter 7: loss 1e999, time 1e999ms, mfu 1e999%",
    "step 8: train loss inf, val loss -inf",
    "number of parameters: 1.2.3M",
    "number of parameters: " + "9" * 400 + ".0M",
    "tokens per iteration will be: 99,999,999,999,999,999,999,999",
    "found vocab_size = 99999999999999999999999",
    "device cpu (\x1b[2J), float32, 1 CPU thread(s); peak 1.2.3 TFLOP/s",
    "device cpu (x), float32, 1 CPU thread(s); peak 0 TFLOP/s",
    "saving checkpoint to " + "p" * 100_000,
    "Overriding: n_layer = 10**60",
    "Overriding: batch_size = -5",
    "Overriding: n_embd = 'x'",
    "Overriding: learning_rate = 1e999",
    "Overriding: wandb_run_name = 'a' * 10**18",
    "Overriding: wandb_run_name = '%0999999999d' % 1",
    "Overriding: n_layer = (((10**64)**64)**64)**64",
    "Overriding: block_size = " + "(" * 10_000 + "1" + ")" * 10_000,
    "Overriding: n_layer = " + "-" * 100_000 + "1",          # deeper than Python's parser goes
    "Overriding: n_layer = " + "[" * 100_000,
    "Overriding: n_layer = " + "1+" * 2000 + "1",
    "Overriding: n_layer = 1\x00",
    "Overriding config with evil.py:",
    "n_layer = " + "-" * 100_000 + "1",
    "batch_size = " + "(" * 100_000,
    "\xff\udcff\x00 binary garbage",
]


@pytest.mark.parametrize("where", ["before", "after", "edges", "nanogpt-log"])
def test_open_shows_the_good_run_in_the_dashboard(runs, where, tmp_path):
    from app_helpers import wait_for

    if where == "nanogpt-log":
        path = tmp_path / "train_log.txt"
        path.write_text("\n".join(HOSTILE_LOG) + "\n" + FIXTURE_LOG.read_text(), errors="surrogateescape")
        want = [s.iter for s in load_run(FIXTURE_LOG).steps]
    else:
        path, want = runs[where], list(range(GOOD_STEPS))

    async def scenario():
        app = GpttuiApp(ReadOnlyRuns([path]))
        ctl = app.controller
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and isinstance(app.screen, DashboardScreen), 60)
            await pilot.pause(0.3)
            if where != "edges":   # there, edge records join the good ones
                assert [s.iter for s in ctl.live.history.steps] == want
            await pilot.press("d")                 # the doctor panel over the same history
            await pilot.pause(0.5)
            await pilot.press("escape")
            await pilot.pause(0.2)
        return app

    app = asyncio.run(scenario())
    assert app.return_code in (0, None)


# The two crashes the issue names, each alone in an otherwise good run.
KNOWN = {
    "huge_iter": {"type": "step", "iter": 99999999999999999999999, "t": 1_800_000_100.0, "loss": 1.0},
    "device_int": {"type": "hello", "iter": GOOD_STEPS, "t": 1_800_000_100.0, "device": 1,
                   "start_iter": GOOD_STEPS},
}


@pytest.mark.parametrize("name", KNOWN)
def test_the_named_crashes_are_gone(name, tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    lines = [protocol.encode(e) for e in good_events()] + [json.dumps(KNOWN[name]) + "\n"]
    (rd / "metrics.jsonl").write_text("".join(lines))
    p = gpttui("doctor", str(rd), "--json")
    no_traceback(p)
    assert p.returncode == 0 and json.loads(p.stdout)["last_iter"] == LAST
    for fmt in ("csv", "parquet"):
        p = gpttui("export", str(rd), "-o", str(tmp_path / f"s.{fmt}"))
        no_traceback(p)
        assert p.returncode == 0 and f"{GOOD_STEPS} steps" in p.stdout
    h = load_run(rd)
    assert (h.skipped_lines, h.repaired_lines) == ((1, 0) if name == "huge_iter" else (0, 1))


def test_attach_reads_the_hostile_history_then_takes_live_events(runs, tmp_path):
    """The dashboard on a live engine (a fake one: its lock, engine.json and control socket)
    whose metrics.jsonl holds every hostile line: the good history, the counts for the doctor
    panel, then live events, hostile ones among them, over the socket."""
    import queue

    from app_helpers import wait_for

    from gpttui.app import LaunchPlan
    from gpttui.ipc.server import ControlServer, socket_path
    from gpttui.run import engine_state

    rd = tmp_path / "run"
    rd.mkdir()
    for name in ("config.toml", "metrics.jsonl"):
        (rd / name).write_bytes((runs["before"] / name).read_bytes())
    # the dashboard signals the engine's pid when it quits: a stand-in process takes it, not pytest
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    es = engine_state.EngineStatus(rd)
    es.acquire()
    server = ControlServer(socket_path(rd), queue.Queue().put)
    server.start()
    es.update(state="running", socket=str(server.path), pid=stand_in.pid)
    es._write()
    want = load_run(rd)

    async def scenario():
        app = GpttuiApp(LaunchPlan(rd, C.load(rd), start=False, attach=True))
        ctl = app.controller
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: not ctl.loading and ctl.live is not None and server.client_count == 1, 60)
            h = ctl.live.history
            assert (h.skipped_lines, h.repaired_lines) == (want.skipped_lines, want.repaired_lines)
            assert [s.iter for s in h.steps] == list(range(GOOD_STEPS))
            for line in hostile_lines()[::7] + [protocol.encode(protocol.event(
                "step", GOOD_STEPS, loss=1.5, lr=1e-3, dt_ms=10.0, tokens_per_s=1.0, mfu=0.01, grad_norm=1.0))]:
                text = line if isinstance(line, str) else line.decode("utf-8", "replace")
                server.publish({"type": "log"}, text.rstrip("\n") + "\n")
            await wait_for(pilot, lambda: ctl.live.history.steps[-1].iter == GOOD_STEPS, 30)
            await pilot.press("d")
            await pilot.pause(0.5)
        return app

    try:
        app = asyncio.run(scenario())
    finally:
        server.close()
        es.close("stopped")
        stand_in.kill()
        stand_in.wait()
    assert app.return_code in (0, None)


@pytest.mark.parametrize("command", ["open", "attach"])
def test_the_dashboard_commands_exit_1_when_the_dashboard_dies(command, runs, monkeypatch, tmp_path):
    """The dashboard's own exception handler prints the traceback; the command must not say 0."""
    import queue

    from gpttui import cli
    from gpttui.app import EngineRun
    from gpttui.ipc.server import ControlServer, socket_path
    from gpttui.run import engine_state

    def broken(self, app):
        raise RuntimeError("a bug in a screen")

    monkeypatch.setattr(ReadOnlyRuns if command == "open" else EngineRun, "start", broken)
    headless = GpttuiApp.run
    monkeypatch.setattr(GpttuiApp, "run", lambda self, **kw: headless(self, headless=True, size=(100, 30)))
    if command == "open":
        assert cli.main(["open", str(runs["after"])]) == 1
        return
    rd = tmp_path / "run"          # a run whose engine is alive: its lock, engine.json and socket
    rd.mkdir()
    (rd / "config.toml").write_bytes((runs["after"] / "config.toml").read_bytes())
    es = engine_state.EngineStatus(rd)
    es.acquire()
    server = ControlServer(socket_path(rd), queue.Queue().put)
    server.start()
    es.update(state="running", socket=str(server.path))
    es._write()
    try:
        assert cli.main(["attach", str(rd)]) == 1
    finally:
        server.close()
        es.close("stopped")



def test_a_hostile_nanogpt_log_reads_as_its_good_lines(tmp_path):
    """Hostile lines first: the good log's `iter 0` restarts the history from there (a restart
    in nanoGPT's terms), so what is kept must be exactly the good log's records."""
    good = FIXTURE_LOG.read_text()
    log = tmp_path / "train_log.txt"
    log.write_text("\n".join(HOSTILE_LOG) + "\n" + good, errors="surrogateescape")
    want = load_run(FIXTURE_LOG)
    h = load_run(log)
    assert [(s.iter, s.loss) for s in h.steps] == [(s.iter, s.loss) for s in want.steps]
    assert [(e.iter, e.val_loss) for e in h.evals] == [(e.iter, e.val_loss) for e in want.evals]
    assert all(isinstance(v, (int, float, str, bool)) for v in h.config.values())
    assert not isinstance(h.config.get("n_layer"), int) or h.config["n_layer"] < 2**53
    p = gpttui("doctor", str(log), "--json")
    no_traceback(p)
    assert p.returncode == 0 and json.loads(p.stdout)["last_iter"] == want.last_iter
    p = gpttui("export", str(log), "-o", str(tmp_path / "s.parquet"))
    no_traceback(p)
    assert p.returncode == 0 and f"{len(want.steps)} steps" in p.stdout
