"""Generation: nanoGPT's text for nanoGPT's seed, the KV cache against recomputation (also past
block_size), char and BPE checkpoints, bad input, and the sampler process (stream, stop, reload)."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from engine_kit import SHAKESPEARE

from gpttui.data.metapkl import write_meta_pkl
from gpttui.data.tokenizer import GPT2_EOT, CharTokenizer, gpt2
from gpttui.engine import checkpoint as K
from gpttui.engine import sample as S
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import protocol

torch.set_num_threads(1)
NANOGPT = Path(__file__).parent / "fixtures" / "nanogpt_model.py"
CHAR_ARGS = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, bias=False, vocab_size=65, dropout=0.0)
BPE_ARGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=32, bias=False, vocab_size=50304, dropout=0.0)


def nanogpt():
    spec = importlib.util.spec_from_file_location("nanogpt_model", NANOGPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def save_nanogpt_ckpt(path: Path, args: dict, config: dict, seed: int = 0) -> None:
    """A checkpoint as nanoGPT's train.py writes it (compiled-model keys, tensor best_val_loss)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**args))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}, "optimizer": {},
                "model_args": args, "iter_num": 250, "best_val_loss": torch.tensor(1.5), "config": config},
               path)


@pytest.fixture(scope="module")
def chars() -> list[str]:
    return sorted(set(SHAKESPEARE.read_text(encoding="utf-8")))


@pytest.fixture
def char_run(tmp_path, monkeypatch, chars) -> Path:
    """nanoGPT's layout: out-shakespeare-char/ckpt.pt and data/shakespeare_char/meta.pkl under the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "shakespeare_char").mkdir(parents=True)
    write_meta_pkl(tmp_path / "data" / "shakespeare_char" / "meta.pkl", chars)
    save_nanogpt_ckpt(tmp_path / "out-shakespeare-char" / "ckpt.pt", CHAR_ARGS,
                      {"dataset": "shakespeare_char", "dtype": "float16", "device": "cuda"})
    return tmp_path / "out-shakespeare-char"


@pytest.fixture
def bpe_run(tmp_path) -> Path:
    save_nanogpt_ckpt(tmp_path / "out" / "ckpt.pt", BPE_ARGS, {"dataset": "openwebtext"})
    return tmp_path / "out"


def run_request(loaded: S.Loaded, **values) -> list[S.Sample]:
    req = S.Request.from_values(values)
    prompt = S.encode_prompt(loaded.tokenizer, req.prompt_text())
    loaded.seed(req.seed)
    return [S.sample_stream(loaded, req, prompt, lambda piece: None) for _ in range(req.num_samples)]


# ---------------------------------------------------------------- same seed, same text

def test_same_seed_gives_nanogpts_text_for_a_nanogpt_checkpoint(char_run, chars):
    """nanoGPT's sample.py: seed, build its GPT, load, generate; we print the same samples."""
    ng = nanogpt()
    ckpt = torch.load(char_run / "ckpt.pt", weights_only=True)
    torch.manual_seed(1337)
    ref = ng.GPT(ng.GPTConfig(**ckpt["model_args"]))
    ref.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    ref.eval()
    tok = CharTokenizer(chars)
    x = torch.tensor([tok.encode("ROMEO:")])
    want = [tok.decode(ref.generate(x, 20, temperature=0.8, top_k=200)[0].tolist()) for _ in range(3)]

    loaded = S.load(char_run / "ckpt.pt", seed=1337)
    got = [s.prompt + s.text for s in run_request(loaded, out_dir=str(char_run), start="ROMEO:",
                                                  num_samples=3, max_new_tokens=20)]
    assert got == want
    again = [s.prompt + s.text for s in run_request(loaded, start="ROMEO:", num_samples=3, max_new_tokens=20)]
    assert again == want  # a second request with the seed: same text (model already loaded)
    other = [s.text for s in run_request(loaded, start="ROMEO:", num_samples=3, max_new_tokens=20, seed=7)]
    assert other != [w[len("ROMEO:"):] for w in want]


def test_draw_is_torch_multinomial_to_the_random_number():
    """The cheaper draw picks what torch.multinomial picks and leaves the generator where it does
    (an older torch that draws differently, e.g. 2.6, gets torch.multinomial itself)."""
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 13):  # the torch the README installs
        assert S._draw_is_multinomial()
    g = torch.Generator().manual_seed(0)
    for case in range(40):
        logits = torch.randn(1, 50304, generator=g) * (0.1 + case / 4)
        if case % 2:
            logits[logits < torch.topk(logits, 200).values[:, [-1]]] = -float("Inf")
        probs = torch.softmax(logits, dim=-1)
        torch.manual_seed(case)
        want, want_state = torch.multinomial(probs, 1), torch.get_rng_state()
        torch.manual_seed(case)
        assert torch.equal(S.draw(probs), want) and torch.equal(torch.get_rng_state(), want_state)


# ---------------------------------------------------------------- the cache is exact

def _greedy_reference(model: GPT, prompt: list[int], n: int, keep: int) -> list[int]:
    """Recompute everything for each token, over the window the cached path keeps."""
    block = model.config.block_size
    seq, start = list(prompt), max(0, len(prompt) - block)
    out = []
    with torch.no_grad():
        for _ in range(n):
            if len(seq) - start > block:
                start = len(seq) - keep
            logits, _ = model(torch.tensor([seq[start:]]))
            out.append(int(logits[0, -1].argmax()))
            seq.append(out[-1])
    return out


@pytest.mark.parametrize("prompt_len", [3, 40])  # 40 > block_size: cropped as nanoGPT does
def test_cached_greedy_equals_recomputed_past_block_size(prompt_len):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**CHAR_ARGS, "block_size": 16})).double().eval()
    prompt = torch.randint(0, 65, (prompt_len,)).tolist()
    n = 60  # several refills of the 16-token window
    # keep=block_size: nanoGPT's own sliding window (its generate with top_k=1 is greedy)
    nano = S.generate_uncached(model, torch.tensor([prompt]), n, top_k=1)[0, prompt_len:].tolist()
    assert list(S.generate(model, prompt, n, temperature=0, keep=16)) == nano
    # the default: refill with the last half when the cache is full
    assert list(S.generate(model, prompt, n, temperature=0)) == _greedy_reference(model, prompt, n, keep=8)


def test_top_p_tiny_is_greedy_and_padding_ids_are_never_drawn():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**BPE_ARGS)).eval()
    greedy = list(S.generate(model, [GPT2_EOT], 30, temperature=0, vocab_size=50257))
    torch.manual_seed(1)
    assert list(S.generate(model, [GPT2_EOT], 30, temperature=1.0, top_k=None, top_p=1e-6, vocab_size=50257)) == greedy
    with torch.no_grad():  # make a padding id the most likely token: it must still not appear
        model.lm_head.weight[50300] = model.lm_head.weight[greedy[0]] * 50
    drawn = list(S.generate(model, [GPT2_EOT], 30, temperature=1.0, top_k=None, vocab_size=50257))
    assert max(drawn) < 50257 and max(S.generate(model, [GPT2_EOT], 5, temperature=0)) == 50300


def test_stop_token_ends_generation():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**CHAR_ARGS)).eval()
    torch.manual_seed(1)
    drawn = list(S.generate(model, [1, 2, 3], 20, temperature=1.0))
    stop = drawn[12]
    first = drawn.index(stop)
    torch.manual_seed(1)
    assert list(S.generate(model, [1, 2, 3], 20, temperature=1.0, stop_token=stop)) == drawn[:first + 1]
    assert first > 0


# ---------------------------------------------------------------- checkpoints and tokenizers

def test_bpe_checkpoint_streams_text_and_empty_prompt_starts_at_endoftext(bpe_run):
    loaded = S.load(bpe_run / "ckpt.pt")
    assert loaded.tokenizer.name == "gpt2" and loaded.iter_num == 250 and loaded.val_loss == 1.5
    assert S.encode_prompt(loaded.tokenizer, "") == [GPT2_EOT]
    assert S.encode_prompt(loaded.tokenizer, "<|endoftext|>Hi") == [GPT2_EOT, *gpt2().encode("Hi")]
    pieces: list[str] = []
    req = S.Request(start="", max_new_tokens=40)
    s = S.sample_stream(loaded, req, S.encode_prompt(loaded.tokenizer, ""), pieces.append)
    assert s.prompt == "<|endoftext|>" and s.tokens == 40 and "".join(pieces) == s.text and s.text


def test_text_stream_joins_utf8_split_across_tokens():
    from gpttui.data.tokenizer import GPT2Tokenizer

    text = "naïve café — 日本語 🙂"
    ids = gpt2().encode(text)
    stream = S.TextStream(GPT2Tokenizer())
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text and len(ids) > len(text.split())


def test_char_checkpoint_empty_prompt_is_a_newline_and_foreign_chars_are_named(char_run):
    loaded = S.load(char_run / "ckpt.pt")
    assert loaded.tokenizer.name == "char" and "meta.pkl" in loaded.tokenizer_source
    assert loaded.tokenizer.decode(S.encode_prompt(loaded.tokenizer, "")) == "\n"
    with pytest.raises(S.SampleError, match="prompt: characters not in the vocabulary: 'é', '日'"):
        S.encode_prompt(loaded.tokenizer, "héllo 日")


def test_file_prompt_and_missing_prompt_file(char_run, tmp_path):
    (tmp_path / "prompt.txt").write_text("JULIET:\nO Romeo", encoding="utf-8")
    assert S.Request(start="FILE:prompt.txt").prompt_text() == "JULIET:\nO Romeo"
    with pytest.raises(S.SampleError, match="start: cannot read prompt file nope.txt"):
        S.Request(start="FILE:nope.txt").prompt_text()


def test_char_model_without_its_meta_pkl_is_refused_with_the_fix(char_run, tmp_path):
    (tmp_path / "data" / "shakespeare_char" / "meta.pkl").unlink()
    with pytest.raises(S.SampleError, match=r"vocab_size is 65 .*data/shakespeare_char/meta.pkl.*--data_dir"):
        S.load(char_run / "ckpt.pt")


def test_gpttui_checkpoint_finds_the_runs_data_dir(tmp_path, chars):
    data = tmp_path / "somewhere" / "chardata"
    data.mkdir(parents=True)
    write_meta_pkl(data / "meta.pkl", chars)
    model = GPT(GPTConfig(**CHAR_ARGS))
    (tmp_path / "run").mkdir()
    K.save(tmp_path / "run" / "ckpt.pt",
           {"model": model.state_dict(), "optimizer": {}, "model_args": CHAR_ARGS, "iter_num": 7,
            "best_val_loss": 2.5, "config": {"dataset": "x", "data_dir": str(data)}})
    loaded = S.load(tmp_path / "run" / "ckpt.pt")
    assert loaded.tokenizer.name == "char" and str(data) in loaded.tokenizer_source


def test_bad_files_are_refused_in_one_plain_line(tmp_path):
    with pytest.raises(S.SampleError, match="no checkpoint there"):
        S.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(300))
    with pytest.raises(S.SampleError, match="not a readable checkpoint"):
        S.load(tmp_path / "junk.pt")
    torch.save({"model": {}, "evil": S.Request()}, tmp_path / "foreign.pt")  # pickles a class
    with pytest.raises(S.SampleError, match="weights_only"):
        S.load(tmp_path / "foreign.pt")


@pytest.mark.parametrize("values, message", [
    ({"temperature": -1}, "temperature: must be >= 0"),
    ({"top_p": 0}, "top_p: must be in"),
    ({"num_samples": "3"}, "num_samples: expected int"),
    ({"max_new_tokens": 0}, "max_new_tokens: must be at least 1"),
    ({"colour": 1}, "unknown sample setting 'colour'"),
])
def test_bad_request_values_name_the_field(values, message):
    with pytest.raises(S.SampleError, match=message):
        S.Request.from_values(values)


# ---------------------------------------------------------------- the sampler process

def test_one_thread_while_the_run_trains_or_the_cores_are_busy(tmp_path, monkeypatch):
    from gpttui.run import engine_state

    cores = S.hardware.auto_threads()
    monkeypatch.setattr(S.psutil, "cpu_count", lambda: cores)
    monkeypatch.setattr(S.psutil, "cpu_percent", lambda interval: 3.0)  # an idle machine
    assert S.auto_threads(tmp_path) == cores
    engine = engine_state.EngineStatus(tmp_path)
    engine.acquire()  # an engine training here
    try:
        assert S.auto_threads(tmp_path) == 1
    finally:
        engine.close(state="finished")
    assert S.auto_threads(tmp_path) == cores
    monkeypatch.setattr(S.psutil, "cpu_percent", lambda interval: 100.0 * (cores - 1) / cores + 5)
    assert S.auto_threads(tmp_path) == 1  # another process keeps all but one core busy


class Sampler:
    def __init__(self, cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "gpttui.engine.sample", "--threads=1"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.inbox: queue.SimpleQueue[dict] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.inbox.put(protocol.decode_event(line))

    def send(self, cmd: str, **values) -> None:
        self.proc.stdin.write(protocol.command(cmd, **values))
        self.proc.stdin.flush()

    def until(self, pred, timeout: float = 60.0) -> list[dict]:
        """Events up to and including the first matching `pred`."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(ev)
            if pred(ev):
                return seen
        raise AssertionError(f"no matching event in {timeout}s; got {seen[-5:]}")


def _end(ev: dict) -> bool:
    return ev["type"] == "state" and ev["state"] in ("finished", "stopped", "failed")


def test_sampler_process_streams_stops_and_reloads_a_new_checkpoint(char_run):
    sp = Sampler(char_run.parent)
    try:
        sp.send("sample", out_dir=char_run.name, start="ROMEO:", num_samples=2, max_new_tokens=15)
        evs = sp.until(_end)
        assert evs[0]["type"] == "log" and evs[0]["ready"]  # torch imported, waiting for requests
        assert evs[1]["type"] == "log" and "loaded" in evs[1]["message"] and evs[1]["iter"] == 250
        assert evs[-1]["state"] == "finished"
        tokens = [e for e in evs if e["type"] == "token"]
        done = [e for e in evs if e["type"] == "sample_done"]
        assert [d["sample"] for d in done] == [0, 1] and all(d["tokens"] == 15 for d in done)
        first = "".join(e["text"] for e in tokens if e["sample"] == 0)
        assert first == "ROMEO:" + done[0]["text"] and tokens[0]["prompt"] is True

        # a long request, cancelled after its first tokens
        sp.send("sample", out_dir=char_run.name, start="ROMEO:", num_samples=3, max_new_tokens=100_000)
        sp.until(lambda e: e["type"] == "token" and not e.get("prompt"))
        sp.send("stop")
        evs = sp.until(_end, timeout=30)
        assert evs[-1]["state"] == "stopped"
        done = [e for e in evs if e["type"] == "sample_done"]
        assert len(done) == 1 and done[0]["stopped"] and 0 < done[0]["tokens"] < 100_000

        # the run writes a new checkpoint (atomically, as the engine does): the next request reads it
        save_nanogpt_ckpt(char_run / "new.pt", CHAR_ARGS, {"dataset": "shakespeare_char"}, seed=5)
        ck = torch.load(char_run / "new.pt", weights_only=True)
        ck["iter_num"] = 500
        K.save(char_run / "ckpt.pt", ck)
        sp.send("sample", out_dir=char_run.name, start="", num_samples=1, max_new_tokens=5)
        evs = sp.until(_end)
        assert evs[0]["type"] == "log" and evs[0]["iter"] == 500 and evs[-1]["state"] == "finished"

        sp.send("sample", out_dir="nowhere", num_samples=1)
        evs = sp.until(_end)
        assert evs[-2]["type"] == "error" and "nowhere/ckpt.pt: no checkpoint there" in evs[-2]["message"]
        assert evs[-1]["state"] == "failed"
        sp.send("pause")
        assert "the sampler takes sample and stop" in sp.until(lambda e: e["type"] == "error")[-1]["message"]
        sp.proc.stdin.close()  # end of input: the sampler exits
        assert sp.proc.wait(30) == 1  # one request failed
    finally:
        if sp.proc.poll() is None:
            sp.proc.kill()


def test_checkpoint_sample_leaves_rng_threads_and_train_mode_as_they_were(tmp_path, chars):
    from gpttui.run import config as C

    write_meta_pkl(tmp_path / "meta.pkl", chars)
    cfg = C.replace(C.DEFAULTS, out_dir=str(tmp_path), data_dir=str(tmp_path), sample_prompt="KING:",
                    sample_tokens=25)
    model = GPT(GPTConfig(**CHAR_ARGS)).train()
    torch.set_num_threads(2)
    rng = torch.get_rng_state()
    try:
        row = S.checkpoint_sample(model, cfg, 30, 2.5, tmp_path / "ckpt.pt")
        assert torch.get_num_threads() == 2 and model.training and torch.equal(torch.get_rng_state(), rng)
    finally:
        torch.set_num_threads(1)
    assert row["iter"] == 30 and row["prompt"] == "KING:" and len(row["text"]) == 25
    assert json.loads((tmp_path / "samples.jsonl").read_text()) == row


def test_samples_jsonl_written_at_checkpoints_by_a_real_training_run(tmp_path):
    from engine_kit import EngineProc, make_char_data, prepare_run, step_losses

    data = make_char_data(tmp_path / "data", n_chars=20_000)
    runs = {}
    for sampling in (True, False):
        run = prepare_run(data, tmp_path / f"run{sampling}", max_iters=20, eval_interval=10,
                          sample_on_checkpoint=sampling, sample_prompt="ROMEO:", sample_tokens=30)
        eng = EngineProc(run)
        assert eng.finish() == 0, eng.stderr
        runs[sampling] = run
    rows = [json.loads(line) for line in (runs[True] / "samples.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [10, 20]
    for r in rows:
        assert r["prompt"] == "ROMEO:" and len(r["text"]) == 30 and r["ckpt"].endswith("ckpt.pt")
        assert isinstance(r["val_loss"], float) and r["t"] > 0
    assert rows[0]["text"] != rows[1]["text"]  # same seed, other weights
    assert not (runs[False] / "samples.jsonl").exists()
    # sampling at checkpoints leaves training exactly as it was
    assert step_losses(runs[True]) == step_losses(runs[False])
