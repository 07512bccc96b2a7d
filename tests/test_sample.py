"""The sampler (engine/sample.py): nanoGPT's text for nanoGPT's seed, char and BPE checkpoints,
bad input, and the sampler process (stream, stop, reload). The decoding itself: test_generate.py."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from engine_kit import BPE_ARGS, CHAR_ARGS, nanogpt

from gpttui.data.metapkl import write_meta_pkl
from gpttui.data.tokenizer import GPT2_EOT, CharTokenizer, gpt2
from gpttui.engine import checkpoint as K
from gpttui.engine import sample as sampler
from gpttui.engine.generate import SampleError, encode_prompt
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import protocol

torch.set_num_threads(1)


def save_nanogpt_ckpt(path: Path, args: dict, config: dict, seed: int = 0) -> None:
    """A checkpoint as nanoGPT's train.py writes it (compiled-model keys, tensor best_val_loss)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**args))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"_orig_mod." + k: v for k, v in model.state_dict().items()}, "optimizer": {},
                "model_args": args, "iter_num": 250, "best_val_loss": torch.tensor(1.5), "config": config},
               path)


@pytest.fixture
def char_run(tmp_path, monkeypatch, shakespeare_chars) -> Path:
    """nanoGPT's layout: out-shakespeare-char/ckpt.pt and data/shakespeare_char/meta.pkl under the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "shakespeare_char").mkdir(parents=True)
    write_meta_pkl(tmp_path / "data" / "shakespeare_char" / "meta.pkl", shakespeare_chars)
    save_nanogpt_ckpt(tmp_path / "out-shakespeare-char" / "ckpt.pt", CHAR_ARGS,
                      {"dataset": "shakespeare_char", "dtype": "float16", "device": "cuda"})
    return tmp_path / "out-shakespeare-char"


@pytest.fixture
def bpe_run(tmp_path) -> Path:
    save_nanogpt_ckpt(tmp_path / "out" / "ckpt.pt", BPE_ARGS, {"dataset": "openwebtext"})
    return tmp_path / "out"


def run_request(loaded: sampler.Loaded, **values) -> list[sampler.Sample]:
    req = sampler.Request.from_values(values)
    prompt = encode_prompt(loaded.tokenizer, req.prompt_text())
    loaded.seed(req.seed)
    return [sampler.sample_stream(loaded, req, prompt, lambda piece: None) for _ in range(req.num_samples)]


# ---------------------------------------------------------------- same seed, same text

def test_same_seed_gives_nanogpts_text_for_a_nanogpt_checkpoint(char_run, shakespeare_chars):
    """nanoGPT's sample.py: seed, build its GPT, load, generate; we print the same samples, also
    past block_size (32 here: 6 prompt + 60 new characters), unless fast_past_block is asked for."""
    ng = nanogpt()
    ckpt = torch.load(char_run / "ckpt.pt", weights_only=True)
    torch.manual_seed(1337)
    ref = ng.GPT(ng.GPTConfig(**ckpt["model_args"]))
    ref.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    ref.eval()
    tok = CharTokenizer(shakespeare_chars)
    x = torch.tensor([tok.encode("ROMEO:")])
    with torch.no_grad():
        want = [tok.decode(ref.generate(x, 60, temperature=0.8, top_k=200)[0].tolist()) for _ in range(3)]

    loaded = sampler.load(char_run / "ckpt.pt", seed=1337)
    got = [s.prompt + s.text for s in run_request(loaded, out_dir=str(char_run), start="ROMEO:",
                                                  num_samples=3, max_new_tokens=60)]
    assert got == want
    again = [s.prompt + s.text for s in run_request(loaded, start="ROMEO:", num_samples=3, max_new_tokens=60)]
    assert again == want  # a second request with the seed: same text (model already loaded)
    other = [s.text for s in run_request(loaded, start="ROMEO:", num_samples=3, max_new_tokens=60, seed=7)]
    assert other != [w[len("ROMEO:"):] for w in want]
    fast = [s.prompt + s.text for s in run_request(loaded, start="ROMEO:", num_samples=3, max_new_tokens=60,
                                                   fast_past_block=True)]
    assert fast != want and fast[0][:32] == want[0][:32]  # the same until the block is full


# ---------------------------------------------------------------- checkpoints and tokenizers

def test_bpe_checkpoint_streams_text_and_empty_prompt_starts_at_endoftext(bpe_run):
    loaded = sampler.load(bpe_run / "ckpt.pt")
    assert loaded.tokenizer.name == "gpt2" and loaded.iter_num == 250 and loaded.val_loss == 1.5
    assert encode_prompt(loaded.tokenizer, "") == [GPT2_EOT]
    assert encode_prompt(loaded.tokenizer, "<|endoftext|>Hi") == [GPT2_EOT, *gpt2().encode("Hi")]
    pieces: list[str] = []
    req = sampler.Request(start="", max_new_tokens=40)
    s = sampler.sample_stream(loaded, req, encode_prompt(loaded.tokenizer, ""), pieces.append)
    assert s.prompt == "<|endoftext|>" and s.tokens == 40 and "".join(pieces) == s.text and s.text


def test_char_checkpoint_empty_prompt_is_a_newline_and_foreign_chars_are_named(char_run):
    loaded = sampler.load(char_run / "ckpt.pt")
    assert loaded.tokenizer.name == "char" and "meta.pkl" in loaded.tokenizer_source
    assert loaded.tokenizer.decode(encode_prompt(loaded.tokenizer, "")) == "\n"
    with pytest.raises(SampleError, match="prompt: characters not in the vocabulary: 'é', '日'"):
        encode_prompt(loaded.tokenizer, "héllo 日")


def test_file_prompt_and_missing_prompt_file(char_run, tmp_path):
    (tmp_path / "prompt.txt").write_text("JULIET:\nO Romeo", encoding="utf-8")
    assert sampler.Request(start="FILE:prompt.txt").prompt_text() == "JULIET:\nO Romeo"
    with pytest.raises(SampleError, match="start: cannot read prompt file nope.txt"):
        sampler.Request(start="FILE:nope.txt").prompt_text()


def test_char_model_without_its_meta_pkl_is_refused_with_the_fix(char_run, tmp_path):
    (tmp_path / "data" / "shakespeare_char" / "meta.pkl").unlink()
    with pytest.raises(SampleError, match=r"vocab_size is 65 .*data/shakespeare_char/meta.pkl.*--data_dir"):
        sampler.load(char_run / "ckpt.pt")



def test_a_data_dir_given_is_the_only_place_its_vocabulary_is_looked_for(char_run, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SampleError, match=r"vocab_size is 65 but data_dir empty has no meta.pkl"):
        sampler.load(char_run / "ckpt.pt", data_dir="empty")
    # one that is not there (the dashboard's run data_dir, removed since training) is passed over
    assert "data/shakespeare_char/meta.pkl" in sampler.load(char_run / "ckpt.pt", data_dir="gone").tokenizer_source

def test_gpttui_checkpoint_finds_the_runs_data_dir(tmp_path, shakespeare_chars):
    data = tmp_path / "somewhere" / "chardata"
    data.mkdir(parents=True)
    write_meta_pkl(data / "meta.pkl", shakespeare_chars)
    model = GPT(GPTConfig(**CHAR_ARGS))
    (tmp_path / "run").mkdir()
    K.save(tmp_path / "run" / "ckpt.pt",
           {"model": model.state_dict(), "optimizer": {}, "model_args": CHAR_ARGS, "iter_num": 7,
            "best_val_loss": 2.5, "config": {"dataset": "x", "data_dir": str(data)}})
    loaded = sampler.load(tmp_path / "run" / "ckpt.pt")
    assert loaded.tokenizer.name == "char" and str(data) in loaded.tokenizer_source


def test_bad_files_are_refused_in_one_plain_line(tmp_path):
    with pytest.raises(SampleError, match="no checkpoint there"):
        sampler.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(300))
    with pytest.raises(SampleError, match="not a readable checkpoint"):
        sampler.load(tmp_path / "junk.pt")
    torch.save({"model": {}, "evil": sampler.Request()}, tmp_path / "foreign.pt")  # pickles a class
    with pytest.raises(SampleError, match="weights_only"):
        sampler.load(tmp_path / "foreign.pt")


@pytest.mark.parametrize("values, message", [
    ({"temperature": -1}, r"temperature: expected a finite number >= 0 \(0 = greedy\), got -1$"),
    ({"temperature": None}, r"temperature: expected a finite number >= 0 \(0 = greedy\), got nan$"),  # NaN as JSON sends it
    ({"top_p": None}, r"top_p: expected a number in \(0, 1\] \(1 = off\), got nan$"),
    ({"top_p": 0}, r"top_p: expected a number in \(0, 1\] \(1 = off\), got 0$"),
    ({"num_samples": "3"}, "num_samples: expected int"),
    ({"max_new_tokens": 0}, "max_new_tokens: must be at least 1"),
    ({"colour": 1}, "unknown sample setting 'colour'"),
])
def test_bad_request_values_name_the_field(values, message):
    with pytest.raises(SampleError, match=message):
        sampler.Request.from_values(values)


# ---------------------------------------------------------------- the sampler process

def test_one_thread_while_the_run_trains_or_the_cores_are_busy(tmp_path, monkeypatch):
    from gpttui.run import engine_state

    cores = sampler.hardware.auto_threads()
    monkeypatch.setattr(sampler.psutil, "cpu_count", lambda: cores)
    monkeypatch.setattr(sampler.psutil, "cpu_percent", lambda interval: 3.0)  # an idle machine
    assert sampler.auto_threads(tmp_path) == cores
    engine = engine_state.EngineStatus(tmp_path)
    engine.acquire()  # an engine training here
    try:
        assert sampler.auto_threads(tmp_path) == 1
    finally:
        engine.close(state="finished")
    assert sampler.auto_threads(tmp_path) == cores
    monkeypatch.setattr(sampler.psutil, "cpu_percent", lambda interval: 100.0 * (cores - 1) / cores + 5)
    assert sampler.auto_threads(tmp_path) == 1  # another process keeps all but one core busy


class SamplerProcess:
    """`python -m gpttui.engine.sample` with its events read on a thread."""

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
    sp = SamplerProcess(char_run.parent)
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


