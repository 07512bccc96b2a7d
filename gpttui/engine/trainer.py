"""The training loop: nanoGPT's train.py, driven by commands and reporting events.

The loop is nanoGPT's (gradient accumulation, autocast, GradScaler for float16, grad
clipping, evaluate every eval_interval and checkpoint on improvement or always), plus:
- commands (pause, resume, stop, save, eval, set) taken between iterations; with several
  processes rank 0 reads them and broadcasts each iteration's list, so all ranks act together
  (over a gloo group when training on NCCL, so that control never waits on the GPU);
- torch's RNG is re-seeded from (seed, rank, iteration) at every iteration, so a run stopped
  and resumed draws the same batches, and follows the same loss curve, as one never stopped;
- a non-finite loss or gradient stops the run before the optimizer step, so the last
  checkpoint stays the last good one; with several processes every rank learns of it, so all
  stop at the same iteration;
- a failure ends every process of a job: what rank 0 does alone (evaluate, checkpoint) is
  followed by a broadcast of its outcome; a rank that fails elsewhere records its error in the
  job's store and exits, and rank 0 reports it as that rank's;
- an end never claims weights it could not write: the end's checkpoint waits for room on a full
  disk (paused), and a stop whose checkpoint fails says which weights were lost and exits 1;
- a torch.compile that fails (compile is lazy: a missing C compiler or a GPU Triton can't
  target shows only at the first call) is caught at a warm-up step, and the run goes on eager.
Rank 0 alone writes events, logs and checkpoints; the other ranks write only their own errors,
to stderr.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from gpttui.engine import checkpoint as K
from gpttui.engine import durable, hardware, lm_loss, optim, pretrained, undo
from gpttui.engine import mirror as run_mirror
from gpttui.engine.batches import Batches, DataError
from gpttui.engine.channel import Channel, CommandReader
from gpttui.engine.checkpoint_samples import checkpoint_sample
from gpttui.engine.host import UI_LOST
from gpttui.engine.model import GPT, GPTConfig
from gpttui.run import config as C
from gpttui.run import directory, layout, live_set, protocol, schedule, sizing
from gpttui.run import pretrained as run_pretrained

FAULT_NAN_ENV = "GPTTUI_FAULT_NAN_AT"  # test hook: make the loss NaN at this iteration
FAULT_NAN_RANK_ENV = "GPTTUI_FAULT_NAN_RANK"  # ... on this rank only (default: every rank)
POLL_S = 0.5  # while paused, rank 0 re-broadcasts this often so other ranks never time out
DISK_CHECK_S = 3.0  # paused for a full disk: how often rank 0 looks whether the writes fit again
DISK_FULL = "disk full"  # how a checkpoint the disk had no room for is said (it waits for room)
WAIT_FOR_ROOM = "wait"  # the end's checkpoint is held back by a full disk: pause, don't finish
FAILED_KEY = "gpttui/failed"  # in the job's store: the first rank to fail alone, and why
# what a start refuses with one line (at setup: refused input; later: a failed run)
REFUSALS = (C.ConfigError, K.CheckpointError, DataError, directory.RunDirError, hardware.DeviceError)
EXIT_REFUSED = 2  # the engine's exit code for a start it refused (the CLI's code for refused input)


class Stop(Exception):
    """Ends the run with a final state: 'finished', 'stopped' or 'failed'. `shared`: every rank
    ends for this reason (rank 0 alone reports it); else the failure is this process's own.
    `unsaved`: stopped as asked, but without the checkpoint the stop asked for: said as an error
    and exit 1, so that `gpttui train RUN && next` never goes on without the run's latest weights."""

    def __init__(self, state: str, reason: str = "", tb: str | None = None, shared: bool = False,
                 unsaved: bool = False):
        super().__init__(reason)
        self.state = state
        self.reason = reason
        self.traceback = tb
        self.shared = shared
        self.unsaved = unsaved


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> "Dist":
        if int(os.environ.get("RANK", -1)) == -1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))


def _seed(*parts: int) -> int:
    """A seed from integers; tuple hashing of ints is the same in every process."""
    return hash(parts) & 0x7FFF_FFFF_FFFF_FFFF


def compile_choice(requested: bool, device_type: str) -> tuple[bool, str]:
    """Whether to torch.compile, and the note to give when a requested compile is skipped."""
    if requested and device_type != "cuda":
        return False, f"compile skipped on {device_type}: no gain there, and a slow cold start"
    return requested, ""


def eager_if_compile_fails(compiled: torch.nn.Module, eager: torch.nn.Module,
                           warm_up: Callable[[torch.nn.Module], None]) -> tuple[torch.nn.Module, str]:
    """The compiled model if `warm_up` runs on it, else the eager one and a one-line note why.
    torch.compile is lazy: no C compiler, a GPU too old for Triton, show only at the first call."""
    try:
        warm_up(compiled)
    except Exception as e:
        return eager, f"compile failed, training without it: {_root_cause(e)}"
    return compiled, ""


def _root_cause(e: BaseException) -> str:
    """The innermost exception as `Type: first line` (torch's compile errors wrap the real one)."""
    while e.__cause__ is not None or getattr(e, "inner_exception", None) is not None:
        e = e.__cause__ or e.inner_exception  # type: ignore[attr-defined]
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


class Trainer:
    def __init__(self, cfg: C.TrainConfig, run_dir: Path, chan: Channel,
                 commands: CommandReader | None, dist: Dist | None = None, config_unsaved: bool = False):
        """`config_unsaved`: cfg carries changes config.toml lacks (a start's overrides), written
        there once set-up has accepted them."""
        self.cfg = cfg
        self.run_dir = run_dir
        self.chan = chan
        self.commands = commands
        self.dist = dist or Dist()
        self.iter_num = 0
        self.start_iter = 0
        self.best_val_loss = math.inf
        self.best_iter: int | None = None
        self.last_val_loss: float | None = None
        self.stop_requested = False
        self.eval_requested = False
        self.save_requested = False
        self.disk_full = False  # paused for a full disk: its checkpoint is retried on resume
        self.held = False  # paused by the user (a full disk's pause then never ends by itself)
        self.disk_check_at = 0.0
        self.unsaved_why = ""  # why the last checkpoint asked for was not written
        self.evaluated_at: int | None = None  # the iteration of the last eval (a paused end never repeats it)
        self.config_unsaved = config_unsaved  # config.toml lags the config (overrides; a `set` a full disk kept out)
        self.undo: undo.UndoPoint | None = None  # (rank 0) the state before a learning-rate change
        self.state = ""
        self.ctrl: Any = None   # the process group of control traffic (None: the default group)
        self.store: Any = None  # the job's key-value store (several processes only)
        self._end_lock = threading.Lock()
        self._ended = False
        fault = os.environ.get(FAULT_NAN_ENV, "")
        fault_rank = os.environ.get(FAULT_NAN_RANK_ENV, "").strip()
        on_this_rank = not fault_rank or int(fault_rank) == self.dist.rank
        self.fault_iter = int(fault) if fault.strip() and on_this_rank else -1

    @property
    def paused(self) -> bool:
        """Paused by the user, or for a full disk (or both: each ends its own part)."""
        return self.held or self.disk_full

    # ------------------------------------------------------------------ events and logs

    def emit(self, type_: str, **fields: Any) -> None:
        if self.dist.master:
            self.chan.emit(type_, self.iter_num, **fields)

    def log(self, message: str, lossy: bool = False) -> None:
        if self.dist.master:
            self.chan.log(message, lossy)

    def note(self, message: str) -> None:
        if self.dist.master:
            self.chan.note(message, self.iter_num)

    def set_state(self, state: str, reason: str = "") -> None:
        if state != self.state:
            self.state = state
            self.emit("state", state=state, **({"reason": reason} if reason else {}))

    # ------------------------------------------------------------------ entry point

    def run(self) -> int:
        """Train until finished, stopped or failed; the exit code: 0 finished or stopped, 2 its
        input refused before training (the config, data, checkpoint, device: the CLI's code for
        refused input), 1 failed later or stopped without the checkpoint the stop asked for."""
        self.set_state("starting")
        mirror = run_mirror.attach(self.cfg, self.run_dir, self.chan, self.note) if self.dist.master else None
        refused = False
        try:
            try:
                self.setup()
            except REFUSALS:
                refused = True
                raise
            if self.config_unsaved:  # accepted: the start's changes become the run's config
                with self.rank0_work():
                    self.save_config()
            self.loop()
        except Stop as s:
            final = s
        except REFUSALS as e:
            final = Stop("failed", str(e))
        except torch.cuda.OutOfMemoryError:
            final = Stop("failed", f"out of GPU memory at iter {self.iter_num}: lower batch_size "
                                   f"(raise gradient_accumulation_steps to keep tokens/iter) or block_size")
        except Exception as e:
            final = Stop("failed", f"{type(e).__name__}: {e}", traceback.format_exc())
        self.finish(final)
        if mirror is not None:  # W&B / TensorBoard take what is queued (bounded wait)
            mirror.close()
        # (a failed job's group may wait on a dead peer: it ends with the process, see __main__)
        if self.dist.ddp and torch.distributed.is_initialized() and final.state != "failed":
            torch.distributed.destroy_process_group()
        if final.state != "failed" and not final.unsaved:
            return 0
        return EXIT_REFUSED if refused else 1

    def finish(self, final: Stop) -> bool:
        """Say how the run ended: once, though the main thread and the signal watcher (on a failed
        job) may both get here. False if it was said already."""
        with self._end_lock:
            if self._ended:
                return False
            self._ended = True
        if final.state == "failed":
            final = self.owner_of(final)
            self.report(final)
        elif final.unsaved:
            self.report(final)
        else:
            self.log(f"{final.state} at iter {self.iter_num}" + (f": {final.reason}" if final.reason else ""))
        self.set_state(final.state, final.reason)
        return True

    def owner_of(self, failure: Stop) -> Stop:
        """The failure to report. When another rank failed first, this one only echoes it (a
        collective broken by that rank's exit) and the job ended for the first one's reason;
        else this failure is recorded for the other ranks to find."""
        if not self.dist.ddp or failure.shared:
            return failure
        first = self.lost_rank()
        if first is not None:
            return first
        if self.store is not None:  # (None: set-up failed before the job formed)
            try:
                if not self.store.check([FAILED_KEY]):
                    self.store.set(FAILED_KEY, json.dumps({"rank": self.dist.rank, "message": failure.reason,
                                                           "traceback": failure.traceback}))
            except (RuntimeError, OSError):
                pass  # the store went with torchrun: this rank's own report still says it
        return failure

    def lost_rank(self) -> Stop | None:
        """The failure another rank recorded in the job's store before leaving, if any."""
        try:
            if self.store is None or not self.store.check([FAILED_KEY]):
                return None
            first = json.loads(self.store.get(FAILED_KEY))
        except (RuntimeError, OSError, ValueError):
            return None
        if first["rank"] == self.dist.rank:
            return None
        return Stop("failed", f"rank {first['rank']} failed: {first['message']}", first["traceback"], shared=True)

    def report(self, failure: Stop) -> None:
        """Rank 0: an error event and one log line (the traceback goes to engine.log only). Other
        ranks: their own failure as one line on stderr (stdout is rank 0's event stream)."""
        message, tb = failure.reason, failure.traceback
        if self.dist.master:
            self.emit("error", message=message, **({"traceback": tb} if tb else {}))
            if tb and self.chan.logfile:
                self.chan.logfile.write(tb)
                self.chan.logfile.flush()
            self.chan.log(f"error: {message}")
        elif not failure.shared:
            print(f"error: rank {self.dist.rank} failed: {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        cfg, d = self.cfg, self.dist
        C.check(cfg)
        threads = cfg.threads or max(1, hardware.auto_threads() // d.world_size)
        torch.set_num_threads(threads)
        if cfg.gradient_accumulation_steps % d.world_size:
            raise C.ConfigError(f"gradient_accumulation_steps: {cfg.gradient_accumulation_steps} does not "
                                f"divide among {d.world_size} processes")
        dev = hardware.pick(cfg.device, cfg.dtype, local_rank=d.local_rank if d.ddp else None)
        self.log(f"training on {dev.device} ({dev.name}) in {dev.dtype}: {dev.dtype_reason}")
        if d.ddp:
            backend = cfg.backend if dev.device_type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
            # commands and fault flags travel every iteration: on a CPU group, never waiting on the GPU
            self.ctrl = None if backend == "gloo" else torch.distributed.new_group(backend="gloo")
            self.store = torch.distributed.distributed_c10d._get_default_store()
        if dev.index is not None:
            torch.cuda.set_device(dev.index)
        if dev.note:
            self.note(dev.note)
        self.dev = dev
        self.tuner = (hardware.ThreadTuner(threads)
                      if not cfg.threads and dev.device_type == "cpu" and threads > 1 and not d.ddp else None)
        if dev.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.accum = cfg.gradient_accumulation_steps // d.world_size
        self.tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size
        self.log(f"tokens per iteration will be: {self.tokens_per_iter:,}")

        vocab = sizing.effective_vocab_size(cfg)
        meta_vocab = sizing.data_vocab_size(cfg.resolved_data_dir())
        if meta_vocab and not cfg.vocab_size:
            self.log(f"found vocab_size = {meta_vocab} (inside {cfg.resolved_data_dir()})")
        self.model_args = dict(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                               block_size=cfg.block_size, bias=cfg.bias, vocab_size=vocab,
                               dropout=cfg.dropout)
        ckpt = None
        if cfg.init_from == "resume":
            path = self.run_dir / layout.CKPT
            self.log(f"Resuming training from {self.run_dir}")
            ckpt = K.load(path, map_location=dev.device)
            K.check_model_args(ckpt["model_args"], self.model_args, path)
            optim.check_resume(ckpt, cfg, path)
            self.iter_num = self.start_iter = ckpt["iter_num"]
            self.best_val_loss = ckpt["best_val_loss"]
            self.best_iter = ckpt.get("best_iter")
        gpt_config = GPTConfig(**self.model_args)
        self.batches = Batches(cfg.resolved_data_dir(), cfg.block_size, cfg.batch_size, dev.device, vocab)
        torch.manual_seed(_seed(cfg.seed, d.rank))
        model = GPT(gpt_config)
        if ckpt is not None:
            try:
                model.load_state_dict(ckpt["model"])
            except RuntimeError as e:
                raise K.CheckpointError(f"{self.run_dir / layout.CKPT}: weights do not fit the model: "
                                        f"{str(e).splitlines()[0]}") from None
        elif run_pretrained.is_pretrained(cfg.init_from):  # nanoGPT's 'gpt2*', from local weights
            try:
                self.log(f"loading weights from {pretrained.load_into(model, cfg.init_from)}")
            except (run_pretrained.PretrainedError, pretrained.PretrainedLoadError) as e:
                raise C.ConfigError(str(e)) from None
        self.log(f"number of parameters: {model.get_num_params() / 1e6:.2f}M")
        model.loss_impl = lm_loss.resolve(cfg.loss_impl, vocab)
        self.log(lm_loss.describe(model.loss_impl))
        model.to(dev.device)
        self.raw_model = model
        self.scaler = torch.amp.GradScaler(dev.device_type, enabled=dev.dtype == "float16")
        self.optimizer = optim.build(model, cfg, dev.device_type, self.log)
        if ckpt is not None and "optimizer" in ckpt:
            optim.load_state(self.optimizer, ckpt["optimizer"], cfg)
        del ckpt
        self.ctx = (nullcontext() if dev.device_type == "cpu" or dev.dtype == "float32"
                    else torch.amp.autocast(device_type=dev.device_type, dtype=getattr(torch, dev.dtype)))
        self.fwd_model: torch.nn.Module = model
        use_compile, why_not = compile_choice(cfg.compile, dev.device_type)
        if why_not:
            self.note(why_not)
        if use_compile:
            self.log("compiling the model... (takes a ~minute)")
            self.fwd_model, failed = eager_if_compile_fails(torch.compile(model), model, self.warm_up)
            if failed:
                self.note(failed)
        self.model: torch.nn.Module = self.fwd_model
        if d.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.fwd_model, device_ids=[d.local_rank] if dev.device_type == "cuda" else None)
        self.peak, source = hardware.peak_flops(dev, cfg.peak_flops, threads)
        self.log(f"device {dev.device} ({dev.name}), {dev.dtype}, {threads} CPU thread(s); "
                 f"peak {self.peak / 1e12:.3g} TFLOP/s ({source})")
        # per process, as nanoGPT's estimate_mfu: FLOPs of this rank's micro-batches
        self.flops_per_iter = model.flops_per_token() * cfg.block_size * cfg.batch_size * self.accum
        total = model.get_num_params(non_embedding=False)
        self.emit("hello", version=protocol.PROTOCOL_VERSION, config=cfg.to_dict(),
                  params={"total": total, "nanogpt": model.get_num_params(),
                          "non_embedding": total - model.transformer.wpe.weight.numel()
                          - model.transformer.wte.weight.numel()},
                  device=dev.device, device_name=dev.name, dtype=dev.dtype, dtype_reason=dev.dtype_reason,
                  peak_flops=self.peak,
                  tokens_per_iter=self.tokens_per_iter, start_iter=self.start_iter,
                  max_iters=cfg.max_iters, world_size=d.world_size, run_dir=str(self.run_dir),
                  pid=os.getpid(), threads=threads)
        if d.master and (point := undo.found(self.run_dir, cfg)) is not None:
            self.undo = point  # a change the last engine never got to evaluate
            self.emit("undo", available=True, to_iter=point.to_iter, values=point.values,
                      message=f"a learning-rate change not yet evaluated: {point.describe()}")

    def warm_up(self, model: torch.nn.Module) -> None:
        """A training forward and backward and an evaluation forward: the two graphs a run
        compiles. Weights, gradients and the mode are left as they were."""
        x, y = self.batches.get("train")
        try:
            with self.ctx:
                _, loss = model(x, y)
            loss.backward()
            model.eval()
            with torch.no_grad(), self.ctx:
                model(x, y)
        finally:
            model.train()
            model.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ commands

    def poll(self, block: bool = False) -> None:
        """Take waiting commands (rank 0 reads, every rank applies the same list)."""
        cmds: list[protocol.Command | str] = []
        if self.commands is not None:
            cmds = self.commands.wait(POLL_S) if block else self.commands.drain()
        elif block and not self.dist.ddp:
            time.sleep(POLL_S)
        if self.dist.ddp:
            box: list[Any] = [cmds]
            torch.distributed.broadcast_object_list(box, src=0, group=self.ctrl)
            cmds = box[0]
        if cmds:
            with self.rank0_work():  # `set` writes config.toml
                for cmd in cmds:
                    self.apply(cmd)

    @contextmanager
    def rank0_work(self) -> Iterator[None]:
        """Around what rank 0 does alone (evaluate, checkpoint, write config.toml) while the other
        ranks pass by: they wait at its end for the outcome, so that an error there ends every
        process at the same point instead of leaving them in a collective rank 0 never joins.
        Enter it on every rank alike: it is one collective call."""
        failure: Exception | None = None
        try:
            yield
        except Exception as e:
            failure = e
        if self.dist.ddp:
            box: list[Any] = [None if failure is None else f"{type(failure).__name__}: {failure}"]
            torch.distributed.broadcast_object_list(box, src=0, group=self.ctrl)
            if box[0] is not None and not self.dist.master:
                raise Stop("failed", f"rank 0 failed: {box[0]}", shared=True)
        if failure is not None:
            raise failure

    def apply(self, cmd: protocol.Command | str) -> None:
        if isinstance(cmd, str):
            self.emit("error", message=cmd)
            return
        if cmd.cmd == "pause":
            self.held = True
            self.set_state("paused")
        elif cmd.cmd == "resume":
            self.disk_full = self.held = False
            self.set_state("running")
        elif cmd.cmd == "stop":
            self.stop_requested = True
        elif cmd.cmd == "save":
            self.save_requested = True
        elif cmd.cmd == "eval":
            self.eval_requested = True
        elif cmd.cmd == "set":
            self.apply_set(cmd.values)
        elif cmd.cmd == "undo":
            self.apply_undo()
        elif cmd.cmd == "disk_full":  # internal, from a failed write (see durable.py)
            self.on_disk_full(cmd.values["what"], cmd.values["error"])
        elif cmd.cmd == "disk_room":  # internal, from resume_when_room
            self.on_disk_room()
        elif cmd.cmd == UI_LOST:  # internal, from engine/host.py
            self.on_ui_lost(cmd.values["why"])

    def internal(self, cmd: protocol.Command) -> None:
        """Rank 0's own command (a full disk, room again): through the command queue, so that with
        several processes every rank takes it at the same iteration."""
        if self.commands is not None:
            self.commands.push(cmd)
        else:
            self.apply(cmd)

    def on_disk_full(self, what: str, error: str) -> None:
        """Pause instead of crashing; the checkpoint is retried on resume, which comes by itself
        once the held-back writes fit (see disk_room_back), or by the user's resume."""
        self.disk_full = True
        self.save_requested = True
        self.disk_check_at = time.monotonic() + DISK_CHECK_S
        kept = ("the last complete checkpoint is kept" if (self.run_dir / layout.CKPT).is_file()
                else "no checkpoint has been written yet")
        self.emit("error", message=f"disk full writing {what} ({error}); training paused at iter "
                                   f"{self.iter_num}, {kept}. "
                                   f"Free some space: training resumes by itself once the writes fit "
                                   f"(or resume now)")
        self.log(f"disk full writing {what}: paused; free some space, it resumes by itself")
        self.set_state("paused", "disk full")

    def disk_room_back(self) -> bool:
        """Rank 0, paused for a full disk: whether what it held back fits now: the waiting log
        and metrics lines are written, config.toml too, and a checkpoint has room."""
        if not self.chan.written():
            return False
        if self.config_unsaved:
            try:
                directory.write_config(self.cfg, self.run_dir)
            except OSError as e:
                if not durable.is_disk_full(e):
                    raise
                return False
            self.config_unsaved = False
        state = {"model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict()}
        return durable.has_room(self.run_dir, K.payload_bytes(state))

    def resume_when_room(self) -> None:
        """Every DISK_CHECK_S while paused for a full disk, resume once the writes fit (a pause the
        user asked for stays: only the full disk's part of it ends)."""
        if not (self.disk_full and self.dist.master) or time.monotonic() < self.disk_check_at:
            return
        self.disk_check_at = time.monotonic() + DISK_CHECK_S
        if not self.disk_room_back():
            return
        self.internal(protocol.Command("disk_room", {}))

    def on_disk_room(self) -> None:
        self.disk_full = False
        if self.held:
            self.note("space freed: the held-back writes fit again; still paused (resume to go on)")
            return
        self.note("space freed: the held-back writes fit again; resuming")
        self.set_state("running")

    def on_ui_lost(self, why: str) -> None:
        """The UI that spawned this engine is gone: checkpoint, then detach or stop (on_ui_lost)."""
        if self.cfg.on_ui_lost == "stop":
            self.note(f"{why}: saving a checkpoint and stopping (on_ui_lost = 'stop')")
            self.stop_requested = True
            return
        self.note(f"{why}: saving a checkpoint and training on detached; "
                  f"`gpttui attach {self.run_dir}` reconnects")
        if self.iter_num > self.start_iter:
            self.save_requested = True

    def apply_set(self, values: dict[str, Any]) -> None:
        """Change live fields; refuse the whole set (an error event) if any value is wrong
        (live_set: the whole config and sane ranges). A learning-rate change first keeps an
        undo point; if it can't, the set is refused."""
        try:
            new, changes = live_set.apply(self.cfg, values, live_set.RunLimits(self.iter_num, self.batches.tokens("val")))
        except C.ConfigError as e:
            self.emit("error", message=f"set refused: {e}")
            return
        old = {k: getattr(self.cfg, k) for k in changes.keys() & live_set.LR_FIELDS}
        if old:
            refused = self.rank0_says(self.keep_undo(old) if self.dist.master else "")
            if refused:
                self.emit("error", message=f"set refused: {refused}")
                return
        self.cfg = new
        optim.apply_live(self.optimizer, new)
        self.save_config()
        self.emit("config", changes=changes)
        self.log(f"config changed: {', '.join(f'{k}={v!r}' for k, v in changes.items()) or 'nothing'}")
        if old and self.undo is not None:
            self.emit("undo", available=True, to_iter=self.undo.to_iter, values=self.undo.values,
                      message=f"learning-rate change at iter {self.iter_num}: {self.undo.describe()} "
                              f"until it has survived its first eval")

    def save_config(self) -> None:
        """Rank 0: config.toml follows the live config (a full disk: once space is freed)."""
        if not self.dist.master:
            return
        try:
            directory.write_config(self.cfg, self.run_dir)
        except OSError as e:  # the change holds in this session; config.toml keeps the old values
            if not durable.is_disk_full(e):
                raise
            self.config_unsaved = True
            self.emit("error", message=f"disk full: config.toml not updated ({e.strerror}); "
                                       f"the change applies now, and reaches config.toml once space is freed")
            return
        self.config_unsaved = False

    def rank0_says(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a collective: every rank calls it at the same point)."""
        if not self.dist.ddp:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0, group=self.ctrl)
        return box[0]

    def keep_undo(self, old: dict[str, Any]) -> str:
        """Rank 0: keep the undo point of a change from `old`; why not, or "" when kept. Never
        raises (the other ranks wait to hear the outcome)."""
        try:
            self.undo = undo.keep(self.run_dir, self.checkpoint_state(), old, self.iter_num, self.undo)
        except Exception as e:
            why = "disk full" if durable.is_disk_full(e, self.run_dir / live_set.UNDO_CKPT) else f"{type(e).__name__}: {e}"
            return f"could not keep the state from before the change for undo ({why})"
        return ""

    def apply_undo(self) -> None:
        """Every rank: back to the undo point's state and the old values; ckpt.pt becomes that state."""
        point = self.rank0_says(self.undo if self.dist.master else None)
        if point is None:
            self.emit("error", message="undo refused: nothing to undo (no learning-rate change is waiting "
                                       "for its first eval)")
            return
        ckpt = K.load(point.path, map_location=self.dev.device)
        self.raw_model.load_state_dict(ckpt["model"])
        self.cfg = C.replace(self.cfg, **point.values)
        optim.load_state(self.optimizer, ckpt["optimizer"], self.cfg)
        self.iter_num = ckpt["iter_num"]
        self.best_val_loss, self.best_iter = ckpt["best_val_loss"], ckpt.get("best_iter")
        if self.dist.ddp:  # every rank has read it before rank 0 moves it
            torch.distributed.barrier(group=self.ctrl)
        if self.dist.master:
            os.replace(point.path, self.run_dir / layout.CKPT)  # a later resume starts from here too
            self.undo = None
            self.save_config()
        self.emit("config", changes=point.values)
        self.emit("undo", available=False, done=True, to_iter=point.to_iter, values=point.values,
                  message=f"undone: back at iter {point.to_iter} with "
                          + ", ".join(f"{k}={v!r}" for k, v in sorted(point.values.items())))
        self.log(f"undo: back at iter {point.to_iter} ({point.flags()})")

    # ------------------------------------------------------------------ the loop

    def eval_and_checkpoint(self, it: int, cfg: C.TrainConfig) -> bool:
        """nanoGPT's eval step: checkpoint when val improved or always_save_checkpoint. False when
        that checkpoint could not be written."""
        self.eval_requested = False
        self.evaluated_at = it
        losses = self.evaluate()
        if losses is not None and self.undo is not None and it > self.undo.set_at and math.isfinite(losses["val"]):
            self.undo.path.unlink(missing_ok=True)
            self.undo = None
            self.emit("undo", available=False, message=f"the learning-rate change survived its first eval "
                                                       f"(val loss {losses['val']:.4f} at iter {it}): no undo now")
        if losses is not None:
            improved = losses["val"] < self.best_val_loss
            if improved:
                self.best_val_loss, self.best_iter = losses["val"], it
            if (improved or cfg.always_save_checkpoint) and it > self.start_iter:
                return self.checkpoint()
        return True

    def serve_while_paused(self) -> None:
        """`eval` and `save` work while paused: look at the val loss, keep a checkpoint now."""
        self.resume_when_room()
        evaluate = self.eval_requested and not self.stop_requested
        save = self.save_requested and not self.disk_full and not self.stop_requested
        if not (evaluate or save):
            return
        with self.rank0_work():
            if evaluate:
                self.eval_and_checkpoint(self.iter_num, self.cfg)
            if save:
                self.save_requested = False
                self.checkpoint(force=True)

    def loop(self) -> None:
        cfg = self.cfg
        if self.iter_num >= cfg.max_iters and not cfg.eval_only:
            self.note(f"already at iter {self.iter_num} = max_iters; raise max_iters to train on")
        self.set_state("running")
        running_mfu = -1.0
        local_iter = 0
        while True:
            self.poll()
            while self.paused and not self.stop_requested:
                self.poll(block=True)
                self.serve_while_paused()
            if self.stop_requested:
                self.stop()
            cfg = self.cfg  # `set` replaces it
            it = self.iter_num
            at_end = it >= cfg.max_iters
            evaluate = ((it % cfg.eval_interval == 0 or at_end) and it != self.evaluated_at) or self.eval_requested
            saved = True
            if evaluate or self.save_requested:
                with self.rank0_work():
                    if evaluate:
                        saved = self.eval_and_checkpoint(it, cfg)
                    if self.save_requested:
                        self.save_requested = False
                        saved = self.checkpoint(force=True) and saved
            if cfg.eval_only:
                raise Stop("finished", "eval_only")
            if at_end:
                unsaved = self.rank0_says(self.end_unsaved(saved))
                if unsaved == WAIT_FOR_ROOM:
                    continue  # paused: the checkpoint is retried once it fits, or a stop says what is lost
                if unsaved:
                    raise Stop("failed", unsaved, shared=True)
                raise Stop("finished", f"max_iters={cfg.max_iters} reached")

            dt, lossf = self.train_step(it, cfg)
            mfu = self.flops_per_iter / dt / self.peak
            self.emit("step", loss=lossf, lr=self.lr, dt_ms=dt * 1000,
                      tokens_per_s=self.tokens_per_iter / dt, mfu=mfu, grad_norm=self.grad_norm,
                      tokens=(it + 1) * self.tokens_per_iter)
            self.iter_num = it + 1
            if it % cfg.log_interval == 0 and self.dist.master:
                running_mfu = mfu if running_mfu < 0 or local_iter < 5 else 0.9 * running_mfu + 0.1 * mfu
                self.log(f"iter {it}: loss {lossf:.4f}, time {dt * 1000:.2f}ms, mfu {running_mfu * 100:.2f}%, "
                         f"tok/s {self.tokens_per_iter / dt:,.0f}", lossy=True)
            local_iter += 1
            if self.tuner and (change := self.tuner.observe(dt)):
                torch.set_num_threads(change[0])
                if change[1]:
                    self.note(change[1])

    def stop(self) -> None:
        """The stop asked for: checkpoint, then end. Without that checkpoint the stop is said as an
        error (which weights, why, what is kept) and the run exits 1."""
        with self.rank0_work():
            saved = self.checkpoint(force=True)
        if saved:
            raise Stop("stopped", "stop requested")
        if not (self.run_dir / layout.CKPT).is_file():  # nothing to resume from: a failed run
            raise Stop("failed", f"stopped at iter {self.iter_num} without a checkpoint "
                                 f"({self.unsaved_why}): none was ever written, the run's weights are lost")
        raise Stop("stopped", f"stopped at iter {self.iter_num}, but {self.unsaved_message('its weights')}",
                   unsaved=True)

    def end_unsaved(self, saved: bool) -> str:
        """Rank 0 at max_iters, when the end's checkpoint was not written: WAIT_FOR_ROOM on a full
        disk (the run pauses, as anywhere), else why the run fails (a non-finite val loss); "" when
        written."""
        if saved or not self.dist.master:
            return ""
        if self.unsaved_why.startswith(DISK_FULL):
            return WAIT_FOR_ROOM
        return f"max_iters={self.cfg.max_iters} reached, but {self.unsaved_message()}"

    def unsaved_message(self, whose: str = "") -> str:
        """Which weights were not saved, why, and the checkpoint a resume starts from instead."""
        kept = (f"the last complete checkpoint is kept: {self.run_dir}{os.sep}{directory.describe_run(self.run_dir)}"
                if (self.run_dir / layout.CKPT).is_file() else "no checkpoint was ever written")
        return f"{whose or f'the weights at iter {self.iter_num}'} were not saved ({self.unsaved_why}); {kept}"

    def train_step(self, it: int, cfg: C.TrainConfig) -> tuple[float, float]:
        """One optimizer step; (seconds, mean micro-batch loss). Raises Stop on a non-finite loss."""
        t0 = time.perf_counter()
        self.reseed(cfg.seed, self.dist.rank, it)
        self.lr = schedule.lr_at(cfg, it)
        optim.set_lr(self.optimizer, cfg, self.lr)
        model, accum = self.model, self.accum
        loss_sum = None
        for micro in range(accum):
            x, y = self.batches.get("train")
            if self.dist.ddp:
                model.require_backward_grad_sync = micro == accum - 1  # all-reduce once, at the end
            with self.ctx:
                _, loss = model(x, y)
                loss = loss / accum
            if it == self.fault_iter:
                loss = loss * float("nan")
            self.scaler.scale(loss).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        params = self.raw_model.parameters()
        self.scaler.unscale_(self.optimizer)  # float16: true gradients for the norm and the clip
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        lossf, self.grad_norm = torch.stack([loss_sum.float(), norm.float()]).tolist()
        self.check_finite(it, lossf, self.grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, lossf

    def check_finite(self, it: int, lossf: float, norm: float) -> None:
        """Raise Stop on a non-finite loss, or gradient norm where no GradScaler is there to skip
        such a step, on any rank: each rank's pair is summed into a table every rank reads, so all
        stop at this iteration, before the optimizer step, and rank 0 can say which rank it was."""
        rows = [[lossf, norm]]
        if self.dist.ddp:
            table = torch.zeros(self.dist.world_size, 2, dtype=torch.float64)
            table[self.dist.rank] = torch.tensor(rows[0], dtype=torch.float64)
            torch.distributed.all_reduce(table, group=self.ctrl)
            rows = table.tolist()
        bad_loss = [(rank, loss) for rank, (loss, _) in enumerate(rows) if not math.isfinite(loss)]
        bad_norm = [gnorm for _, gnorm in rows if not math.isfinite(gnorm)]
        if bad_loss:  # (one rank's NaN loss makes every rank's gradients NaN: the loss says where)
            rank, loss = bad_loss[0]
            what = f"loss {loss}" + (f" on rank {rank}" if self.dist.ddp else "")
        elif bad_norm and not self.scaler.is_enabled():  # float16: the scaler skips such steps
            what = f"gradient norm {bad_norm[0]}"
        else:
            return
        last = (f"the last good checkpoint ({self.run_dir / layout.CKPT}) is kept"
                if (self.run_dir / layout.CKPT).exists() else "no checkpoint was written")
        if self.undo is not None:
            last += (f"; the learning-rate change since iter {self.undo.set_at} may be why: resume with "
                     f"the old values, `gpttui train {self.run_dir} {self.undo.flags()}`")
        raise Stop("failed", f"non-finite {what} at iter {it}; stopped before the optimizer step, {last}",
                   shared=True)

    def reseed(self, *parts: int) -> None:
        """Seed the generators batches and dropout draw from (torch.manual_seed would also visit
        every backend: ~0.3 ms, too much per iteration)."""
        seed = _seed(*parts)
        torch.default_generator.manual_seed(seed)
        if self.dev.device_type == "cuda":
            torch.cuda.manual_seed(seed)
        elif self.dev.device_type == "mps":
            torch.mps.manual_seed(seed)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float] | None:
        """Mean loss over eval_iters batches of each split (rank 0 only, as nanoGPT)."""
        if not self.dist.master:
            return None
        self.set_state("evaluating")
        self.reseed(self.cfg.seed, self.dist.rank, self.iter_num, 1)
        model = self.fwd_model
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = torch.zeros(self.cfg.eval_iters, device=self.dev.device)
            for k in range(self.cfg.eval_iters):
                x, y = self.batches.get(split)
                with self.ctx:
                    _, loss = model(x, y)
                losses[k] = loss
            out[split] = losses.mean().item()
        model.train()
        self.last_val_loss = out["val"]
        best = min(self.best_val_loss, out["val"])
        self.log(f"step {self.iter_num}: train loss {out['train']:.4f}, val loss {out['val']:.4f}")
        self.emit("eval", train_loss=out["train"], val_loss=out["val"], best_val_loss=best)
        self.set_state("paused" if self.paused else "running")
        return out

    def checkpoint_state(self) -> dict[str, Any]:
        """The run now, as nanoGPT's checkpoint dict."""
        return {
            "model": self.raw_model.state_dict(),
            "optimizer": optim.saved_state(self.optimizer, self.dev.device_type),
            "model_args": self.model_args,
            optim.KIND_KEY: self.cfg.optimizer,
            "iter_num": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "best_iter": self.best_iter,
            "config": self.cfg.to_dict(),
        }

    def checkpoint(self, force: bool = False) -> bool:
        """Write ckpt.pt (rank 0). `force`: also when nothing was trained since the last one.
        False if it could not be written (a full disk pauses the run; a non-finite val loss
        never replaces a good checkpoint)."""
        if not self.dist.master or (not force and self.iter_num == 0):
            return True
        if self.last_val_loss is not None and not math.isfinite(self.last_val_loss):
            self.emit("error", message=f"val loss {self.last_val_loss} at iter {self.iter_num}: "
                                       f"checkpoint not written, the last good one is kept")
            self.unsaved_why = f"val loss {self.last_val_loss}"
            return False
        self.set_state("saving")
        ckpt = self.checkpoint_state()
        self.log(f"saving checkpoint to {self.run_dir}")
        path = self.run_dir / layout.CKPT
        try:
            durable.check_injected_fault()
            K.save(path, ckpt)
            K.keep_recent(path, self.iter_num, self.cfg.keep_checkpoints, self.best_iter)
        except (OSError, RuntimeError) as e:  # (torch's zip writer re-raises ENOSPC as RuntimeError)
            if not durable.is_disk_full(e, path, K.payload_bytes(ckpt)):
                raise
            self.internal(protocol.Command("disk_full", {"what": f"the checkpoint at iter {self.iter_num}",
                                                         "error": durable.reason(e)}))
            self.unsaved_why = f"{DISK_FULL}: {durable.reason(e)}"
            return False
        self.emit("checkpoint", path=str(path), val_loss=self.last_val_loss)
        if self.cfg.sample_on_checkpoint:
            self.sample_at_checkpoint(path)
        self.set_state("paused" if self.paused else "running")
        return True

    def sample_at_checkpoint(self, path: Path) -> None:
        """A short fixed-prompt sample into RUN_DIR/samples.jsonl, so the text can be seen
        improving as the loss falls; a problem there is logged, never stops training."""
        try:
            checkpoint_sample(self.raw_model, self.cfg, self.iter_num, self.last_val_loss, path, self.ctx)
        except Exception as e:
            self.log(f"sample at checkpoint failed: {type(e).__name__}: {e}")
