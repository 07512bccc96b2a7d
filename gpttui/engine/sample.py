"""The sampler process: text from a checkpoint, on request, streamed as it is made.

    python -m gpttui.engine.sample [--device=auto] [--dtype=auto] [--threads=N]

reads commands on stdin, one JSON line each: `{"cmd": "sample", "values": {...}}` (a Request:
nanoGPT sample.py's knobs) and `{"cmd": "stop"}` (cancel the request being generated and any
queued). For every sample it streams `token` events - first the prompt (prompt: true), then the
new text piece by piece, so the pieces concatenate to what nanoGPT's sample.py prints - and a
`sample_done`; each request ends with a `state` event (finished, stopped or failed). It exits
when stdin closes and its queue is done. `gpttui sample` and the TUI's sampling pane (key g)
drive it. The decoding itself is generate.py's.

Same seed, same text - and the text nanoGPT's sample.py prints for that checkpoint and seed:
nanoGPT seeds torch, then builds the model (its random init draws from the generator), then
samples with torch.multinomial over the whole vocabulary. `Loaded.seed` reproduces that state,
generate.pick is nanoGPT's sampling step, and past block_size generate computes nanoGPT's window
(unless fast_past_block asks for the cached half-block refill, whose text is its own).
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import psutil
import torch

from gpttui.data.tokenizer import GPT2Tokenizer, Tokenizer, for_data_dir
from gpttui.engine import checkpoint, hardware
from gpttui.engine.generate import SampleError, SampleFailed, TextStream, autocast_dtype, encode_prompt, generate
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import engine_state, layout, protocol

# ---------------------------------------------------------------- requests

@dataclass
class Request:
    """One `sample` command: nanoGPT sample.py's knobs (names and defaults) plus gpttui's."""

    out_dir: str = "out"        # the run; its ckpt.pt is sampled unless ckpt is given
    ckpt: str = ""              # a checkpoint file (overrides out_dir/ckpt.pt)
    start: str = "\n"           # the prompt, or FILE:path to read it from a file
    num_samples: int = 10
    max_new_tokens: int = 500
    temperature: float = 0.8    # 0: greedy (always the most likely token)
    top_k: int | None = 200     # None or 0: no top-k filter
    top_p: float = 1.0          # nucleus filter; 1: off
    seed: int = 1337
    stop_at_eot: bool = False   # end a sample at <|endoftext|> (GPT-2 vocabularies)
    fast_past_block: bool = False  # past block_size: cached, on the last half block (not nanoGPT's text)
    data_dir: str = ""          # where meta.pkl is; when there, the only place looked
    threads: int = 0            # CPU threads; 0: auto_threads() (1 while the run trains)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Request:
        """Check names, types and ranges; SampleError names the first bad field."""
        known = [f.name for f in fields(cls)]
        kw: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise SampleError(f"unknown sample setting {key!r} (expected one of {', '.join(known)})")
            default = getattr(cls, key)
            if key == "top_k" and value is None:
                kw[key] = None
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise SampleError(f"{key}: expected true or false, got {value!r}")
                kw[key] = value
            elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
                kw[key] = float(value)
            elif isinstance(default, float) and value is None:
                kw[key] = math.nan  # how the protocol carries a NaN or infinity: the range check names it
            elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
                kw[key] = value
            elif isinstance(default, str) and isinstance(value, str):
                kw[key] = value
            else:
                raise SampleError(f"{key}: expected {type(default).__name__}, got {value!r}")
        req = cls(**kw)
        if req.top_k == 0:
            req.top_k = None
        checks = [
            (req.num_samples >= 1, "num_samples: must be at least 1"),
            (req.max_new_tokens >= 1, "max_new_tokens: must be at least 1"),
            (math.isfinite(req.temperature) and req.temperature >= 0,
             f"temperature: expected a finite number >= 0 (0 = greedy), got {req.temperature:g}"),
            (req.top_k is None or req.top_k > 0, "top_k: must be positive (0 or null: off)"),
            (0 < req.top_p <= 1, f"top_p: expected a number in (0, 1] (1 = off), got {req.top_p:g}"),
            (req.threads >= 0, "threads: must be >= 0 (0 = automatic)"),
        ]
        for ok, message in checks:
            if not ok:
                raise SampleError(message)
        return req

    def checkpoint_path(self) -> Path:
        return Path(self.ckpt) if self.ckpt else Path(self.out_dir) / layout.CKPT

    def prompt_text(self) -> str:
        """The prompt; `FILE:path` reads it from a file, as nanoGPT's sample.py does."""
        if not self.start.startswith("FILE:"):
            return self.start
        path = Path(self.start[5:])
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SampleError(f"start: cannot read prompt file {path}: {e.strerror if isinstance(e, OSError) else e}") from None


# ---------------------------------------------------------------- loading

def _given_dir(data_dir: str) -> Path | None:
    """The data_dir a request names, if it is there. One that is not is passed over, and said
    (Loaded.tokenizer_note): the dashboard names the run's own, which may be gone since training
    (`gpttui sample` refuses it)."""
    return Path(data_dir) if data_dir and Path(data_dir).is_dir() else None


def find_tokenizer(ckpt_config: dict[str, Any], ckpt_path: Path, given: Path | None = None) -> tuple[Tokenizer, str]:
    """(tokenizer, where it came from). nanoGPT looks for data/<dataset>/meta.pkl (relative to
    the working directory) and otherwise uses GPT-2. A data_dir given (_given_dir) is the one place
    looked in (its meta.pkl, else GPT-2): another directory's vocabulary must not stand in for it.
    Without one, gpttui tries the run's own data_dir, nanoGPT's place, then data/<dataset> next to the
    run directory."""
    if given is not None:
        return _vocabulary(given)
    dirs: list[Path] = []
    if ckpt_config.get("data_dir"):
        dirs.append(Path(str(ckpt_config["data_dir"])))
    dataset = ckpt_config.get("dataset")
    if dataset:
        dirs += [Path("data") / str(dataset), ckpt_path.resolve().parent.parent / "data" / str(dataset)]
    for d in dirs:
        if (d / "meta.pkl").is_file() or (d / "meta.json").is_file():
            return _vocabulary(d)
    return GPT2Tokenizer(), "GPT-2 BPE (bundled ranks)"


def _vocabulary(d: Path) -> tuple[Tokenizer, str]:
    """Data directory d's tokenizer (nanoGPT's rule: its meta.pkl, else GPT-2) and where it came from."""
    try:
        tok = for_data_dir(d)
    except ValueError as e:
        raise SampleError(str(e)) from None
    metas = [m for m in (d / "meta.pkl", d / "meta.json") if m.is_file()]
    if not metas:
        return tok, f"GPT-2 BPE (bundled ranks; {d} has no meta.pkl)"
    return tok, f"{tok.name} vocabulary ({tok.vocab_size}) from {metas[0]}"


@dataclass
class Loaded:
    """A checkpoint's model in eval mode on its device, with the tokenizer to talk to it."""

    model: GPT
    tokenizer: Tokenizer
    path: Path
    stamp: tuple[int, int, int]       # (inode, mtime_ns, size) of the file that was read
    iter_num: int
    val_loss: float | None
    model_args: dict[str, Any]
    device: str
    ctx: AbstractContextManager[Any]  # autocast on a GPU, nothing on the CPU
    tokenizer_source: str
    load_s: float
    rng_states: dict[int, torch.Tensor] = field(default_factory=dict)
    device_reason: str = ""           # why this device: shown in the sampling pane
    tokenizer_note: str = ""          # the data_dir named is gone: what stands in, shown in the pane

    def seed(self, seed: int) -> None:
        """Seed torch as nanoGPT's sample.py does: manual_seed, then the model's random init."""
        if self.device != "cpu":
            torch.manual_seed(seed)  # a GPU samples with its own generator, untouched by the init
            return
        if seed not in self.rng_states:
            torch.manual_seed(seed)
            GPT(GPTConfig(**self.model_args))  # only for the random numbers its init draws
            self.rng_states[seed] = torch.get_rng_state()
        torch.set_rng_state(self.rng_states[seed])

    @property
    def n_params(self) -> int:
        return self.model.get_num_params()


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load(path: str | Path, device: str = "cpu", dtype: str = "auto", data_dir: str = "",
         seed: int | None = None) -> Loaded:
    """Read a checkpoint's weights once and build its model. gpttui writes checkpoints by
    rename, so the file read is always a complete one; a nanoGPT run writes in place, so a read
    that races its write is retried once the file stops changing. The file is memory-mapped:
    the optimizer state beside the weights is never read. device 'auto' with a CUDA GPU takes
    the GPU only when the model fits beside whatever else runs there (hardware.sampler_device)."""
    p = Path(path)
    t0 = time.perf_counter()
    for attempt in range(3):
        try:
            stamp = _stamp(p)
        except OSError:
            raise SampleError(f"{p}: no checkpoint there (train first, or pick another file)") from None
        try:
            ckpt = checkpoint.load(p, map_location="cpu", mmap=True)
            break
        except checkpoint.CheckpointError as e:
            if attempt == 2 or _stamp(p) == stamp:
                raise SampleError(str(e)) from None
            time.sleep(0.5)  # it was being written: read the finished file
    args = {f.name: ckpt["model_args"][f.name] for f in fields(GPTConfig) if f.name in ckpt["model_args"]}
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = GPT(GPTConfig(**args))
    except (TypeError, AssertionError) as e:
        raise SampleError(f"{p}: model_args {args} do not describe a GPT: {e}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise SampleError(f"{p}: weights do not fit the model_args: {str(e).splitlines()[0]}") from None
    try:
        dev, why = _sampling_device(model, device, dtype)
    except RuntimeError as e:
        raise SampleFailed(str(e)) from None
    rng = {seed: torch.get_rng_state()} if seed is not None and dev.device_type == "cpu" else {}
    half = dev.device_type == "cuda" and dev.dtype != "float32"
    try:
        model.eval().to(dev.device, dtype=getattr(torch, dev.dtype) if half else None)
    except (RuntimeError, AssertionError) as e:  # out of memory; a torch built without CUDA asserts
        raise SampleFailed(f"{p}: could not put the model on {dev.device} ({why}): "
                          f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    config = ckpt.get("config") or {}
    given = _given_dir(data_dir)
    tok, source = find_tokenizer(config if isinstance(config, dict) else {}, p, given)
    gone = f"data_dir {data_dir} is gone (moved or deleted since training?)" if data_dir and given is None else ""
    if tok.vocab_size > model.config.vocab_size:
        if gone:
            raise SampleError(f"{gone}: the prompt can't be encoded without its meta.pkl (the model's "
                              f"{model.config.vocab_size}-token vocabulary; found only {source})")
        if given is not None:
            raise SampleError(f"{p}: the model's vocab_size is {model.config.vocab_size} but data_dir {data_dir} "
                              f"has no meta.pkl (a character model needs its vocabulary's meta.pkl there)")
        dataset = config.get("dataset", "?") if isinstance(config, dict) else "?"
        raise SampleError(
            f"{p}: the model's vocab_size is {model.config.vocab_size} but the tokenizer found is "
            f"{source}; a character model needs its meta.pkl (looked for data/{dataset}/meta.pkl "
            f"and the run's data_dir): pass --data_dir=DIR")
    ctx = (nullcontext() if dev.device_type in ("cpu", "cuda") or dev.dtype == "float32"
           else torch.amp.autocast(device_type=dev.device_type, dtype=getattr(torch, dev.dtype)))
    val = ckpt.get("best_val_loss")
    return Loaded(model, tok, p, stamp, ckpt["iter_num"],
                  float(val) if val is not None and math.isfinite(float(val)) else None,
                  args, dev.device, ctx, source, time.perf_counter() - t0, rng, why,
                  f"{gone}: using {source} instead" if gone else "")


def _sampling_device(model: GPT, device: str, dtype: str) -> tuple[hardware.Device, str]:
    """The device to sample on and why. 'auto' on a CUDA machine asks the GPU how much memory
    is free before creating anything there, so a run training on the same card is never put
    at risk; a device named explicitly is taken as asked."""
    if device == "auto" and torch.cuda.is_available():
        c = model.config
        need = hardware.inference_bytes(model.get_num_params(non_embedding=False), c.n_layer, c.n_embd,
                                        c.block_size, c.vocab_size)
        device, auto_dtype, why = hardware.sampler_device(need, hardware.probe_gpu())
        dev = hardware.pick(device, auto_dtype if dtype == "auto" else dtype)
        return dev, why
    dev = hardware.pick(device, dtype)
    return dev, f"{dev.dtype} on {dev.name}" if dev.device_type != "cpu" else "CPU"


# ---------------------------------------------------------------- one sample

@dataclass
class Sample:
    """One finished sample, as `sample_done` reports it."""

    prompt: str
    text: str                 # the new text only
    tokens: int
    seconds: float
    first_token_s: float      # from the start of the sample to its first new token
    stopped: bool = False     # cancelled before the end
    eot: bool = False         # ended at <|endoftext|>

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def sample_stream(loaded: Loaded, req: Request, prompt: list[int],
                  on_piece: Callable[[str], None], cancelled: Callable[[], bool] = lambda: False) -> Sample:
    """Generate one sample, passing each new piece of text to on_piece as it is made."""
    tok = loaded.tokenizer
    stream = TextStream(tok)
    pieces: list[str] = []
    stop_token = tok.eot if req.stop_at_eot else None
    keep = (loaded.model.config.block_size // 2 or None) if req.fast_past_block else None
    t0 = time.perf_counter()
    first = 0.0
    n = 0
    eot = stopped = False
    with loaded.ctx:
        gen = generate(loaded.model, prompt, req.max_new_tokens, temperature=req.temperature,
                       top_k=req.top_k, top_p=req.top_p, vocab_size=tok.vocab_size, stop_token=stop_token,
                       keep=keep, cache_dtype=autocast_dtype(loaded.ctx))
        for token in gen:
            n += 1
            if n == 1:
                first = time.perf_counter() - t0
            if token == stop_token:
                eot = True
                break
            piece = stream.push(token)
            if piece:
                pieces.append(piece)
                on_piece(piece)
            if cancelled():
                stopped = True
                break
        gen.close()
    tail = stream.flush()
    if tail:
        pieces.append(tail)
        on_piece(tail)
    return Sample(tok.decode(prompt), "".join(pieces), n, time.perf_counter() - t0, first, stopped, eot)


# ---------------------------------------------------------------- the sampler process

def auto_threads(run_dir: Path) -> int:
    """One thread while an engine trains in the run directory (training keeps the rest); else
    the cores other processes leave idle right now (measured over 0.1 s: the load average
    would count this sampler's own last request), at least one. Oversubscribed cores are the
    worst case for decoding: each token is a few hundred small parallel regions, and a thread
    waiting for a busy core stalls each of them."""
    st = engine_state.status(run_dir)
    if st.kind == "alive" and (st.info is None or st.info.state in layout.TRAINING_STATES):
        return 1
    cores = hardware.auto_threads()
    busy = psutil.cpu_percent(interval=0.1) / 100 * (psutil.cpu_count() or cores)
    return max(1, min(cores, int(cores - busy + 0.4)))


class Sampler:
    """The process's state: loaded checkpoints, the request queue, cancellation."""

    def __init__(self, out: IO[str], device: str, dtype: str, threads: int):
        self.out = out
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self.loaded: Loaded | None = None
        self.requests: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue()
        self.received = 0       # requests read so far (their ids are 1..received)
        self.cancel_upto = 0    # requests with an id up to this one are cancelled
        self._out_lock = threading.Lock()

    def emit(self, type_: str, iter_: int = 0, **fields: Any) -> None:
        line = protocol.encode(protocol.event(type_, iter_, **fields))
        with self._out_lock:
            self.out.write(line)
            self.out.flush()

    def read_commands(self, stream: IO[str]) -> None:
        """The stdin thread: queue sample requests, take stop at once."""
        for line in stream:
            if not line.strip():
                continue
            try:
                cmd = protocol.decode_command(line)
            except protocol.ProtocolError as e:
                self.emit("error", message=f"command refused: {e}")
                continue
            if cmd.cmd == "sample":
                self.received += 1
                self.requests.put((self.received, cmd.values))
            elif cmd.cmd == "stop":
                self.cancel_upto = self.received
            else:
                self.emit("error", message=f"command refused: the sampler takes sample and stop, not {cmd.cmd}")
        self.requests.put(None)

    def serve(self, stdin: IO[str]) -> int:
        threading.Thread(target=self.read_commands, args=(stdin,), daemon=True, name="commands").start()
        self.emit("log", message=f"sampler ready (torch {torch.__version__}, pid {os.getpid()})", ready=True)
        failed = False
        while (item := self.requests.get()) is not None:
            rid, values = item
            failed = not self.run(rid, values) or failed
        return 1 if failed else 0

    def get_model(self, req: Request) -> Loaded:
        """The request's checkpoint, loaded again only if its file changed since."""
        path = req.checkpoint_path()
        have = self.loaded
        try:
            same = have is not None and have.path == path and have.stamp == _stamp(path)
        except OSError:
            same = False
        if not same:
            self.loaded = None  # free the old model before reading the new one
            self.loaded = load(path, self.device, self.dtype, req.data_dir, seed=req.seed)
            self.emit_loaded(self.loaded)
        assert self.loaded is not None
        return self.loaded

    def emit_loaded(self, m: Loaded) -> None:
        val = f", val loss {m.val_loss:.4f}" if m.val_loss is not None else ""
        self.emit("log", m.iter_num,
                  message=f"loaded {m.path} (iter {m.iter_num}{val}; {m.n_params / 1e6:.2f}M parameters, "
                          f"block_size {m.model.config.block_size}; {m.tokenizer_source}; {m.device}: "
                          f"{m.device_reason}) in {m.load_s:.2f}s",
                  ckpt=str(m.path), iter_num=m.iter_num, val_loss=m.val_loss, params=m.n_params,
                  block_size=m.model.config.block_size, tokenizer=m.tokenizer.name,
                  vocab_size=m.tokenizer.vocab_size, device=m.device, device_reason=m.device_reason,
                  load_s=round(m.load_s, 3), **({"tokenizer_note": m.tokenizer_note} if m.tokenizer_note else {}))

    def run(self, rid: int, values: dict[str, Any]) -> bool:
        """One request; False if it failed (an error event says why)."""
        iter_ = 0
        try:
            req = Request.from_values(values)
            cancelled = lambda: rid <= self.cancel_upto  # noqa: E731
            if cancelled():
                self.emit("state", state="stopped", reason="cancelled before it started")
                return True
            m = self.get_model(req)
            iter_ = m.iter_num
            threads = req.threads or self.threads or auto_threads(m.path.parent)
            torch.set_num_threads(threads)
            prompt = encode_prompt(m.tokenizer, req.prompt_text())
            prompt_text = m.tokenizer.decode(prompt)
            m.seed(req.seed)
            self.emit("state", iter_, state="running", threads=threads, prompt_tokens=len(prompt),
                      device=m.device)
            for k in range(req.num_samples):
                if cancelled():
                    break
                self.emit("token", iter_, text=prompt_text, sample=k, prompt=True)
                s = sample_stream(m, req, prompt, lambda piece: self.emit("token", iter_, text=piece, sample=k),
                                  cancelled)
                self.emit("sample_done", iter_, text=s.text, sample=k, prompt=s.prompt, tokens=s.tokens,
                          seconds=round(s.seconds, 3), first_token_s=round(s.first_token_s, 4),
                          tokens_per_s=round(s.tokens_per_s, 1), stopped=s.stopped, eot=s.eot,
                          seed=req.seed, ckpt=str(m.path), val_loss=m.val_loss,
                          temperature=req.temperature, top_k=req.top_k, top_p=req.top_p)
            if cancelled():
                self.emit("state", iter_, state="stopped", reason="cancelled")
            else:
                self.emit("state", iter_, state="finished")
            return True
        except SampleError as e:   # refused: the request's or checkpoint's fault, not the sampler's
            self.emit("error", iter_, message=str(e), **({} if isinstance(e, SampleFailed) else {"refused": True}))
        except Exception as e:  # report, keep serving
            self.emit("error", iter_, message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        self.emit("state", iter_, state="failed")
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gpttui.engine.sample",
                                description="The sampler process: sample/stop commands on stdin, events on stdout.")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--dtype", default="auto", help="float32, bfloat16, float16 or auto (the CPU always uses float32)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: 1 while the run trains, else the cores left idle)")
    args = p.parse_args(argv)
    sampler = Sampler(sys.stdout, args.device, args.dtype, args.threads)
    try:
        return sampler.serve(sys.stdin)
    except BrokenPipeError:  # whoever reads our events is gone
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
