"""The run doctor: judge a run (live, finished, or an old nanoGPT log) with numbers.

`diagnose(history)` returns a `Report`: the error that ended the run (a nanoGPT log's last
traceback: out of memory gets what to change), the first loss that is not finite (a diverged run),
parameters against what the config promises, tokens seen per parameter, the val-loss trend
and plateau (stated over the evals' own span, a fall as a compounding rate so it never passes
100%), the train/val gap, a schedule-aware forecast (gpttui.analysis.forecast), a cosine that
decays past max_iters, time (mean iteration, eval/checkpoint overhead, duration, ETA)
and MFU per GPU against the real device's peak (how it and the engine's own average: `_mfu`).
Unknown figures stay None, never guessed.

How time is estimated from nanoGPT logs (they carry no timestamps): `time Tms` on an
`iter N` line is the time of that single iteration, printed every log_interval iterations.
An iteration that starts with an eval (and checkpoint) includes that pause, so it shows up
as ~15 s more than its neighbours. So:
  - normal iteration time = the logged times of iterations that are neither warm-up (the
    first WARMUP iterations of each start of the process: compile, the -100% MFU lines) nor
    eval iterations; a running median of them is interpolated over every iteration;
  - eval overhead per eval = a logged eval iteration's time minus the normal time there; evals
    at unlogged iterations are charged the mean of the measured ones;
  - duration = the sum over every iteration from the first to the last: its logged time when
    logged, else the interpolated normal time plus the eval overhead if it evaluated;
  - eval_overhead (fraction) = all eval overhead / duration; the first iteration's excess
    (compile, and the eval at a start) is counted as start-up, not as eval overhead.
For metrics.jsonl runs the events carry wall time: duration is the sum of the sessions'
spans, and each gap between step events longer than its iterations' step times is charged
to evals/checkpoints when one happened in it, else to pauses.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gpttui.analysis import extend_plan, pace
from gpttui.analysis import forecast as F
from gpttui.analysis.peaks import table_peak
from gpttui.run import config as C
from gpttui.run import sizing
from gpttui.run.history import RunHistory
from gpttui.run.nanogpt_log import NANOGPT_A100_PEAK
from gpttui.run.schedule import DECAY_UNFINISHED, decay_left, lr_at
from gpttui.run.units import human_count, human_duration

WARMUP = 5               # nanoGPT measures MFU from the 5th iteration of a process on
PAUSE_STEPS = 10         # a gap this many step-times longer than expected is a pause
TREND_HORIZON = 0.25     # the trend judged over this fraction of the iterations so far ...
TREND_HORIZON_MIN = 1000  # ... and at least this many iterations, but never more than the run's own length
FLAT_GAIN = 0.015        # less val improvement than this over the horizon is flat
TOKENS_PROMISE_SLACK = 0.2   # a tokens comment off by more than this fraction is a mismatch


@dataclass
class Finding:
    key: str
    title: str
    lines: list[str]
    verdict: str
    level: str = "ok"       # ok | note | warn


@dataclass
class Timing:
    method: str | None = None           # "timestamps" | "iteration times"
    mean_iter_ms: float | None = None
    iterations: int = 0
    duration_s: float | None = None
    train_s: float | None = None
    eval_overhead_s: float | None = None
    eval_overhead: float | None = None  # fraction of duration
    eval_pause_s: float | None = None   # mean pause per eval
    evals: int = 0                      # evals charged to eval overhead ...
    evals_total: int = 0                # ... of the evals in the timed span (the rest: in start-up)
    startup_s: float | None = None
    paused_s: float | None = None       # paused as the engine said, else gaps between steps with no eval,
                                        # longer than PAUSE_STEPS steps
    wall_iter_ms: float | None = None   # wall time per iteration outside evals and pauses
    eta_s: float | None = None


@dataclass
class Report:
    source: str
    kind: str
    last_iter: int | None
    max_iters: int | None
    params: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)
    trend: dict[str, Any] = field(default_factory=dict)
    gap: dict[str, Any] = field(default_factory=dict)
    forecast: F.Forecast | None = None
    forecasts: list[F.Forecast] = field(default_factory=list)
    forecast_note: str = ""
    timing: Timing = field(default_factory=Timing)
    mfu: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    skipped_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        t = self.timing
        return {
            "source": self.source,
            "kind": self.kind,
            "last_iter": self.last_iter,
            "max_iters": self.max_iters,
            "params": self.params.get("nanogpt"),
            "params_total": self.params.get("total"),
            "params_non_embedding": self.params.get("non_embedding"),
            "optimizer": self.params.get("optimizer"),
            "tokens_per_iter": self.tokens.get("per_iter"),
            "tokens_seen": self.tokens.get("seen"),
            "tokens_per_param": _round(self.tokens.get("per_param"), 2),
            "duration_s": _round(t.duration_s, 1),
            "eval_overhead": _round(t.eval_overhead, 5),
            "eval_overhead_s": _round(t.eval_overhead_s, 1),
            "mean_iter_ms": _round(t.mean_iter_ms, 2),
            "eta_s": _round(t.eta_s, 1),
            "timing": {k: _round(v, 5) if isinstance(v, float) else v for k, v in asdict(t).items()},
            "forecast": self.forecast.to_dict() if self.forecast else None,
            "forecasts": [f.to_dict() for f in self.forecasts],
            "forecast_note": self.forecast_note,
            "trend": self.trend,
            "gap": self.gap,
            "mfu": self.mfu,
            "skipped_lines": self.skipped_lines,
            "findings": [asdict(f) for f in self.findings],
        }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


# ---------------------------------------------------------------- the whole report

def diagnose(h: RunHistory, forecast_at: int | None = None, device: str | None = None) -> Report:
    """Judge a run as its history stands (use `history.until(N)` to judge it at iteration N)."""
    r = Report(h.source, h.kind, h.last_iter, h.max_iters, skipped_lines=h.skipped_lines)
    cfg = h.train_config()
    r.params, f_params = _params(h, cfg)
    r.tokens, f_tokens = _tokens(h, r.params.get("nanogpt"))
    r.trend, f_trend = _trend(h)
    r.gap, f_gap = _gap(h)
    f_forecast = _forecast(h, r, cfg, forecast_at)
    r.timing, f_time = _time(h)
    shaped = None if r.params.get("shape") == "unknown" else cfg   # FLOPs from the shape, else from the log's MFU
    r.mfu, f_mfu = _mfu(h, shaped, r.params.get("nanogpt"), r.timing, device)
    r.findings = [f_params, f_tokens, f_trend, f_gap, f_forecast, f_time, f_mfu]
    if h.config.get("eval_only") is True:   # one eval of a model, nothing trained: nothing else to judge
        r.findings = [f_params, _eval_only(h)]
    if (f_decay := _decay_cut_short(h, r, cfg)) is not None:
        r.findings.insert(r.findings.index(f_forecast) + 1, f_decay)
    if (f_loss := _non_finite(h)) is not None:
        r.findings.insert(0, f_loss)
    fatal = h.fatal_error
    if fatal is not None:
        if not (h.steps or h.evals or h.params_reported or h.tokens_per_iter_reported or h.hello):
            r.findings = []   # it died reading its config: no model, no tokens, nothing else to judge
        r.findings.insert(0, _ended(fatal))
    errors = [e for e in h.errors if e is not fatal]   # (the one that ended the run is said above)
    if h.skipped_lines or h.repaired_lines or errors:
        lines = []
        if h.skipped_lines:
            what = "stray line" if h.kind == "nanogpt-log" else "torn or garbled line"
            lines.append(f"{h.skipped_lines} {what}{'s' * (h.skipped_lines != 1)} skipped of {h.lines}")
        if h.repaired_lines:
            lines.append(f"{h.repaired_lines} line(s) read without fields that held bad values"
                         + (f", the first: {h.first_repair}" if h.first_repair else ""))
        if errors:
            lines.append(f"{len(errors)} error event(s); last: {errors[-1].get('message', '')[:100]}")
        r.findings.append(Finding("data", "data", lines,
                                  "the rest of the source was read" if not errors else "the run reported errors",
                                  "note" if not errors else "warn"))
    return r


# ---------------------------------------------------------------- how the run ended

OUT_OF_MEMORY = re.compile(r"out of (GPU )?memory|OutOfMemoryError|can't allocate memory", re.IGNORECASE)
MESSAGE_SHOWN = 400   # characters of the error shown (the start says most)


def _ended(e: dict) -> Finding:
    """The error, and what to change where it says what: out of memory (the most common way a run
    on a card of its own dies) is a smaller batch, the tokens per iteration kept."""
    message = str(e.get("message", ""))
    it = e.get("iter") if isinstance(e.get("iter"), int) else 0
    lines = [f"at iter {it:,}: {message[:MESSAGE_SHOWN]}{'…' * (len(message) > MESSAGE_SHOWN)}"]
    if message.startswith("KeyboardInterrupt"):
        return Finding("ended", "ended", lines, "stopped by hand (Ctrl+C)", "note")
    if OUT_OF_MEMORY.search(message):
        return Finding("ended", "ended", lines,
                       "out of memory: lower batch_size and raise gradient_accumulation_steps by as much "
                       "(the same tokens per iteration), or lower block_size", "warn")
    return Finding("ended", "ended", lines, "the run ended in this error", "warn")


# ---------------------------------------------------------------- losses that are not numbers

def _loss_name(v: float | None, kind: str) -> str:
    if v is None or kind != "nanogpt-log" and math.isnan(v):
        return "NaN or infinite"   # metrics.jsonl carries both as null
    return "NaN" if math.isnan(v) else "infinite" if v > 0 else "-infinite"


def _non_finite(h: RunHistory) -> Finding | None:
    """The first loss that is not a finite number, and whether the run diverged there (its step
    losses end that way: nanoGPT prints `loss nan` from then on) or finite ones follow (a bad
    batch, a garbled line); None when every loss is finite. The history keeps them as they are."""
    bad: list[tuple[int, int, str, float | None]] = []   # iter, eval before step, what, value
    for e in h.evals:
        for what, v in (("train loss", e.train_loss), ("val loss", e.val_loss)):
            if v is None or not math.isfinite(v):
                bad.append((e.iter, 0, what + " (eval)" * (what == "train loss"), v))
    bad += [(st.iter, 1, "train loss", st.loss) for st in h.steps if not math.isfinite(st.loss)]
    if not bad:
        return None
    bad.sort(key=lambda b: b[:2])
    it, _, what, value = bad[0]
    lines = [f"{what} became {_loss_name(value, h.kind)} at iter {it:,}"]
    if len(bad) > 1:
        lines.append(f"{len(bad)} non-finite losses in all, the last at iter {bad[-1][0]:,}")
    tail = 0   # the step losses the source ends with that are not finite
    while tail < len(h.steps) and not math.isfinite(h.steps[-1 - tail].loss):
        tail += 1
    if not tail:
        verdict = "finite losses follow: a bad batch or a garbled line; the trend and forecast use the finite ones"
    else:
        at = h.steps[-tail].iter
        before = [c.iter for c in h.checkpoints if c.iter < at]
        where = f"the checkpoint at iter {before[-1]:,}" if before else "a checkpoint before it"
        verdict = (f"the run diverged at iter {at:,}: resume from {where} with a lower learning_rate "
                   "(or a longer warmup, grad_clip)")
    return Finding("nonfinite", "loss", lines, verdict, "warn")


def _eval_only(h: RunHistory) -> Finding:
    """An eval_only run (nanoGPT's eval_gpt2 configs): its losses are the whole result."""
    evals = [e for e in h.evals if e.val_loss is not None]
    if not evals:
        return Finding("eval_only", "eval only", ["no eval in this source"], "eval_only = True: nothing trained", "note")
    e = evals[-1]
    train = f", train loss {e.train_loss:.4f}" if e.train_loss is not None else ""
    return Finding("eval_only", "eval only", [f"val loss {e.val_loss:.4f}{train} at iter {e.iter:,}"],
                   "eval_only = True: the model was evaluated, not trained", "ok")


# ---------------------------------------------------------------- parameters

def _params(h: RunHistory, cfg: C.TrainConfig | None) -> tuple[dict[str, Any], Finding]:
    p: dict[str, Any] = {"nanogpt": None, "total": None, "non_embedding": None, "source": None}
    lines: list[str] = []
    level, verdict = "ok", ""
    hp = (h.hello or {}).get("params")
    if isinstance(hp, dict) and hp.get("nanogpt"):
        p.update(nanogpt=hp.get("nanogpt"), total=hp.get("total"), non_embedding=hp.get("non_embedding"),
                 source="engine")
    elif cfg is not None and (vocab := _config_vocab(h, cfg)):
        total, nano, non_emb = sizing.count_params(cfg.n_layer, cfg.n_embd, cfg.block_size, vocab, cfg.bias)
        p.update(nanogpt=nano, total=total, non_embedding=non_emb, source="config")
    reported = h.params_reported
    not_run = None   # why the config's shape is not the model that ran, where the log's count says so
    if reported and p["source"] == "config" and abs(p["nanogpt"] - reported) > max(0.005 * reported, 5_000):
        # the model nanoGPT built is what its count says: where the config builds another, the log's count wins
        if not cfg.vocab_size and _vocab_explains(p["nanogpt"], reported, cfg.n_embd, vocab):
            p.update(nanogpt=int(round(reported)), total=None, source="log")   # (non-embedding stays right)
        else:
            not_run = _shape_not_run(h, cfg, p["nanogpt"])
            p.update(nanogpt=int(round(reported)), total=None, non_embedding=None, source="log", shape="unknown")
    if p["nanogpt"] is None and reported:
        p.update(nanogpt=int(round(reported)), source="log")
    if p["nanogpt"] is None:
        return p, Finding("params", "parameters", ["not in this source (no config, no 'number of parameters' line)"],
                          "unknown: give the config to judge the model size", "note")
    lines.append(f"{p['nanogpt'] / 1e6:.2f}M (nanoGPT's count, without position embeddings)")
    if p["total"] is not None:
        lines.append(f"total {human_count(p['total'])} with position embeddings, "
                     f"non-embedding {human_count(p['non_embedding'])}")
    elif p["non_embedding"] is not None:
        lines.append(f"non-embedding {human_count(p['non_embedding'])}")
    if cfg is not None:
        p["optimizer"] = cfg.optimizer
        lines.append(optimizer_text(cfg))
    if not_run is not None:
        lines.append(not_run)
        return p, Finding("params", "parameters", lines,
                          "the log's own count; the figures that need the model's shape use what the log measured",
                          "note")
    problems = []
    if cfg is not None and h.config_text:
        problems += sizing.size_mismatches(cfg, h.config_text, h.config_file)
    if problems:
        level, verdict = "warn", "; ".join(problems)
    else:
        promised = sizing.promised_sizes(cfg, h.config_text, h.config_file) if cfg is not None and h.config_text else []
        verdict = (f"matches the ~{human_count(promised[0][1], 0)} the {promised[0][0]} promises" if promised
                   else "no size promised by the config's names or comments to check against")
    return p, Finding("params", "parameters", lines, verdict, level)


def _config_vocab(h: RunHistory, cfg: C.TrainConfig) -> int | None:
    """The vocabulary the config's model has: a log's, nanoGPT's default where it never said; a run's,
    from its data's meta (None where that can't be read now: no count from the config then)."""
    if cfg.vocab_size or h.kind == "nanogpt-log":
        return cfg.vocab_size or sizing.GPT2_PADDED_VOCAB
    try:
        return sizing.effective_vocab_size(cfg)
    except C.ConfigError:
        return None


def _vocab_explains(built: float, reported: float, n_embd: int, assumed_vocab: int) -> bool:
    """Whether another vocabulary, the config's shape kept, gives the log's count (the log never said its
    vocabulary, and nanoGPT's 50304 was assumed)."""
    vocab = assumed_vocab + (reported - built) / n_embd
    return vocab >= 2 and abs(vocab - round(vocab)) * n_embd < max(0.005 * reported, 5_000)


def _shape_not_run(h: RunHistory, cfg: C.TrainConfig, built: float) -> str:
    """Why the config read from the log builds another model than the log's count (said beside it)."""
    if cfg.init_from == "resume":
        why = "it resumed a checkpoint, whose shape is not in the log"
    elif h.config_unknown:
        why = f"the config sets {', '.join(sorted(h.config_unknown))}, which gpttui could not read"
    else:
        why = "the config as read is not the one that ran"
    return f"the config read from the log builds {built / 1e6:.2f}M: {why}"


def optimizer_text(cfg: C.TrainConfig) -> str:
    """The run's optimizer and its peak learning rates, as configured."""
    if cfg.optimizer == "muon":
        return (f"optimizer muon: Muon lr {cfg.muon_lr:.1e} (momentum {cfg.muon_momentum:g}) on the block "
                f"matrices, AdamW lr {cfg.learning_rate:.1e} on the embeddings and 1-D gains/biases")
    return f"optimizer {cfg.optimizer}: lr {cfg.learning_rate:.1e}, weight decay {cfg.weight_decay:g}"


# ---------------------------------------------------------------- tokens

def _tokens(h: RunHistory, params: int | None) -> tuple[dict[str, Any], Finding]:
    tpi, seen = h.tokens_per_iter, h.tokens_seen
    t: dict[str, Any] = {"per_iter": tpi, "seen": seen, "per_param": None, "at_max_iters": None,
                         "per_param_at_max_iters": None}
    if seen is None:
        return t, Finding("tokens", "tokens", ["tokens per iteration unknown (no config or 'tokens per iteration' line)"],
                          "unknown: give the config (--config FILE) to count them", "note")
    # the engine's own count may stand without tokens/iter (its hello lost): then no product
    done = seen // tpi if tpi and seen % tpi == 0 else None   # (an engine's count over several sizes of job is not)
    lines = [f"{human_count(seen)} seen" + (f" = {done:,} iterations x {tpi:,} tokens" if done is not None else "")]
    if h.max_iters and tpi:
        t["at_max_iters"] = (h.max_iters + 1) * tpi   # iterations 0 to max_iters, as nanoGPT's loop and the engine run
    if not params:
        return t, Finding("tokens", "tokens", lines, "tokens per parameter unknown (parameters unknown)", "note")
    t["per_param"] = seen / params
    lines[0] += f" = {t['per_param']:.1f} tokens/parameter (compute-optimal ~{sizing.COMPUTE_OPTIMAL:.0f})"
    if t["at_max_iters"]:
        t["per_param_at_max_iters"] = t["at_max_iters"] / params
        lines.append(f"at max_iters {h.max_iters:,}: {human_count(t['at_max_iters'])} "
                     f"= {t['per_param_at_max_iters']:.1f} tokens/parameter")
    ratio = t["per_param"]
    if promise := _tokens_promise_mismatch(h, t["at_max_iters"]):
        return t, Finding("tokens", "tokens", lines, promise, "warn")
    side = sizing.compute_optimal_side(ratio)
    if side == "under":
        verdict, level = f"under-trained for its size: {ratio / sizing.COMPUTE_OPTIMAL:.0%} of compute-optimal so far", "note"
    elif side == "about":
        verdict, level = "about compute-optimal", "ok"
    else:
        verdict, level = (f"{ratio / sizing.COMPUTE_OPTIMAL:.1f}x compute-optimal: past the compute-optimal point, "
                          "more data than a bigger model would use (fine for a model you will run a lot)"), "ok"
    return t, Finding("tokens", "tokens", lines, verdict, level)


TOKENS_COMMENT_RES = (
    re.compile(r"(\d+(?:\.\d+)?)\s*([KMBT])\b(?:\s+[a-z]+)?\s+tokens\b", re.I),   # "~3B tokens seen"
    re.compile(r"\btokens\b\D{0,30}?(\d+(?:\.\d+)?)\s*([KMBT])\b", re.I),          # "tokens be 300B"
)
UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def token_promises(config_text: str) -> list[tuple[int, float]]:
    """(line, tokens) for each total-tokens figure a comment of the config gives ("~3B tokens seen")."""
    out = []
    for no, line in enumerate(config_text.splitlines(), 1):
        if "#" not in line:
            continue
        comment = line.split("#", 1)[1]
        for rx in TOKENS_COMMENT_RES:
            if m := rx.search(comment):
                out.append((no, float(m[1]) * UNITS[m[2].lower()]))
                break
    return out


def _tokens_promise_mismatch(h: RunHistory, at_max_iters: int | None) -> str:
    """What a tokens comment promises against what max_iters x tokens/iter gives, if they differ."""
    if not at_max_iters or not h.config_text:
        return ""
    for line, promised in token_promises(h.config_text):
        if abs(at_max_iters - promised) > TOKENS_PROMISE_SLACK * promised:
            where = f"{h.config_file or 'the config'}:{line}"
            return (f"the comment on {where} promises ~{human_count(promised, 0)} tokens, but max_iters "
                    f"{h.max_iters:,} x {h.tokens_per_iter:,} tokens/iter gives {human_count(at_max_iters)}")
    return ""


# ---------------------------------------------------------------- trend and gap

def _recent(h: RunHistory) -> list:
    evs = [e for e in h.evals if e.iter > 0 and e.val_loss is not None and math.isfinite(e.val_loss)]
    if len(evs) < 2:
        return evs
    last = evs[-1].iter
    window = [e for e in evs if e.iter >= 0.75 * last]
    return window if len(window) >= 3 else evs[-3:]


def _slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and its standard error."""
    x, y = np.array(xs, float), np.array(ys, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0, math.inf
    a, b = np.polyfit(x, y, 1)
    if len(x) < 3:
        return float(a), math.inf
    resid = y - (a * x + b)
    se = math.sqrt(float(resid @ resid) / (len(x) - 2) / float(((x - x.mean()) ** 2).sum()))
    return float(a), se


def _valid_evals(h: RunHistory) -> list:
    """The evals with a finite val loss: what the trend and the forecast count from."""
    return [e for e in h.evals if e.val_loss is not None and math.isfinite(e.val_loss)]


def _trend(h: RunHistory) -> tuple[dict[str, Any], Finding]:
    evs = _recent(h)
    total = len(_valid_evals(h))
    if len(evs) < 2:
        return {"per_1000": None, "plateau": None, "rising": None}, Finding(
            "trend", "loss trend", [f"{total} eval(s) so far"], "needs at least 2 evals after iter 0", "note")
    its, vals = [e.iter for e in evs], [e.val_loss for e in evs]
    slope, se = _slope(its, vals)
    per_k = slope * 1000
    rate = _relative_rate(its, vals, slope)
    first, last = its[0], its[-1]
    span = last - first
    # flat: at this rate the next quarter of the run so far (at least 1000 iterations, at most as
    # many as the run has done) gains little; compounding, a fall stays under 100%
    horizon = min(max(TREND_HORIZON_MIN, TREND_HORIZON * last), last)
    ahead = -math.expm1(rate * horizon)
    no_gain = len(evs) >= 3 and slope + se >= 0
    flat = len(evs) >= 3 and not no_gain and ahead < FLAT_GAIN
    rel_k, rel_span = math.expm1(rate * 1000), math.expm1(rate * span)
    # up beyond its scatter and by more than a flat run's gain (or two evals, which say no more)
    rising = slope > 0 and (len(evs) < 3 or (slope - se > 0 and rel_span > FLAT_GAIN))
    trend = {"per_1000": round(per_k, 5), "relative_per_1000": round(rel_k, 5),
             "change_over_window": round(slope * span, 5), "relative_over_window": round(rel_span, 5),
             "plateau": not rising and (no_gain or flat or slope >= 0), "rising": rising, "flat": flat,
             "gain_ahead": round(ahead, 5), "horizon": int(horizon),
             "window": [first, last], "evals": len(evs), "evals_total": total, "best_val": h.best_val}
    if span >= TREND_HORIZON_MIN:   # a rate per 1000 iters the evals span
        lines = [f"val {per_k:+.4f} per 1000 iters ({rel_k:+.2%}) over the last {len(evs)} of {total} evals "
                 f"({first:,}-{last:,}); best val {h.best_val:.4f}"]
    else:                           # a short run: its own change, never extrapolated to 1000 iters
        lines = [f"val {slope * span:+.4f} ({rel_span:+.2%}) over iters {first:,}-{last:,}, the last "
                 f"{len(evs)} of {total} evals; best val {h.best_val:.4f}"]
    if rising:
        verdict, level = "rising: val goes up over the recent evals, past its best", "warn"
    elif no_gain:
        verdict, level = "plateau: no clear improvement over the recent evals", "warn"
    elif flat:
        verdict, level = (f"flat: at this rate {ahead:.1%} more over the next {int(horizon):,} iters; "
                          "consider stopping or annealing"), "note"
    elif slope < 0:
        verdict, level = f"still falling: {ahead:.1%} more over the next {int(horizon):,} iters at this rate", "ok"
    else:
        verdict, level = "plateau: no clear improvement over the recent evals", "warn"
    return trend, Finding("trend", "loss trend", lines, verdict, level)


def _relative_rate(its: list[int], vals: list[float], slope: float) -> float:
    """d ln(val) / d iter: the val loss's relative change per iteration, which compounds (a loss
    falling by a share of itself never falls below zero); the linear slope over the last val
    when a loss is not positive."""
    if min(vals) > 0:
        return _slope(its, [math.log(v) for v in vals])[0]
    return slope / vals[-1] if vals[-1] > 0 else 0.0


def _gap(h: RunHistory) -> tuple[dict[str, Any], Finding]:
    evs = [e for e in _recent(h) if e.train_loss is not None and math.isfinite(e.train_loss)]
    if not evs:
        return {"gap": None, "overfitting": None}, Finding("gap", "train/val gap", ["no eval with both losses"],
                                                            "unknown", "note")
    last = evs[-1]
    gap = last.val_loss - last.train_loss
    overfit = False
    if len(evs) >= 3:
        its = [e.iter for e in evs]
        vs, vse = _slope(its, [e.val_loss for e in evs])
        ts, tse = _slope(its, [e.train_loss for e in evs])
        overfit = vs - vse > 0 and ts + tse < 0
    g = {"gap": round(gap, 5), "relative": round(gap / last.train_loss, 5), "overfitting": overfit,
         "at_iter": last.iter}
    lines = [f"val {last.val_loss:.4f} - train {last.train_loss:.4f} = {gap:+.4f} ({gap / last.train_loss:+.1%}) "
             f"at iter {last.iter:,}"]
    if overfit:
        verdict, level = "overfitting: val rises while train falls; stop, add data, or raise dropout", "warn"
    elif gap / last.train_loss > F.MEMORISING:
        verdict, level = "val well above train: memorising (watch for val turning up)", "warn"
    elif gap < 0:
        verdict, level = "val below train: no overfitting (the splits differ a little)", "ok"
    else:
        verdict, level = "small gap: no overfitting", "ok"
    return g, Finding("gap", "train/val gap", lines, verdict, level)


# ---------------------------------------------------------------- forecast

def _forecast(h: RunHistory, r: Report, cfg: C.TrainConfig | None, forecast_at: int | None) -> Finding:
    evs = _valid_evals(h)   # a NaN or infinite val loss is reported on its own (_non_finite)
    its, vals = [e.iter for e in evs], [e.val_loss for e in evs]
    last_eval = max((i for i in its), default=None)
    targets: list[int] = []
    if h.max_iters:
        targets += [h.max_iters, 2 * h.max_iters]
    if forecast_at:
        targets.append(forecast_at)
    if not targets and last_eval is not None:
        targets.append(last_eval)
    if last_eval is not None and h.max_iters and last_eval >= h.max_iters and forecast_at != h.max_iters:
        targets.remove(h.max_iters)   # reached: its eval says it, no forecast does
    targets = sorted(set(targets))
    if not targets or last_eval is None:
        return Finding("forecast", "forecast", ["no evals yet"], "needs evals", "note")
    horizon = max(max(targets), last_eval)
    sched, stride, r.forecast_note = F.run_schedule(h, cfg, horizon, max(forecast_at or 0, last_eval))
    if cfg is not None and cfg.optimizer != "adamw":
        r.forecast_note += f"; optimizer {cfg.optimizer} (muon_lr {cfg.muon_lr:.1e} on the same schedule)"
    if cfg is None or cfg.decay_lr:   # a constant lr has no decay to gain from
        r.forecast_note += f"; {F.gain_note(h.vocab_size)}"
    trains = [e.train_loss for e in evs]
    fit = F.fit(its, vals, sched / sched.max(), trains, stride, h.vocab_size)
    if fit is None:   # the extend screen says why in the same words
        why = F.no_forecast(its, vals, trains, cfg.eval_interval if cfg else None, h.max_iters)
        return Finding("forecast", "forecast", [f"{len(its)} eval(s)"], why,
                       "warn" if F.instability(its, vals, trains) else "note")
    predicted = [fit.predict(t) for t in targets]
    primary = next((f for f in predicted if f.iter == (forecast_at or h.max_iters or last_eval)), predicted[0])
    r.forecasts = [f for f in predicted if not f.too_wide]
    fitted = (f"fit on {fit.n_points} of {len(_valid_evals(h))} evals ({fit.first_iter:,}-{fit.last_iter:,}; "
              f"the first {F.FIT_START:.0%} is the initial transient); {r.forecast_note}")
    if primary.too_wide:
        return Finding("forecast", "forecast", [fitted], F.too_early(primary), "note")
    r.forecast = primary
    lines = []
    if h.max_iters and h.max_iters not in targets:
        lines.append(f"max_iters {h.max_iters:,} reached: val {vals[-1]:.3f} at its last eval (iter {last_eval:,})")
    for f in r.forecasts:
        tag = ("max_iters" if f.iter == h.max_iters else "2x max_iters" if h.max_iters and f.iter == 2 * h.max_iters
               else "--forecast-at" if f.iter == forecast_at else "last eval")
        lines.append(f"val {f.val_loss:.3f} ({f.low:.3f}-{f.high:.3f}) at iter {f.iter:,} ({tag})")
    lines.append(fitted)
    if fit.gap is not None:
        lines.append("val = the train loss's fit + the val-train gap, which has grown over the recent evals "
                     "(repeated data memorised, or val text that differs), extrapolated")
    f = r.forecast
    if f.iter <= last_eval:
        return Finding("forecast", "forecast", lines, f"the fit puts val at {f.val_loss:.3f} by iter {f.iter:,}", "ok")
    if (rise := F.rise_note(f, its, vals)) is not None:
        return Finding("forecast", "forecast", lines, rise + _best_kept(cfg, h.kind == "nanogpt-log"), "warn")
    verdict = f"{f.val_loss - vals[-1]:+.3f} more from here to iter {f.iter:,}"
    twice = next((x for x in r.forecasts if h.max_iters and x.iter == 2 * h.max_iters), None)
    if twice is not None and f.iter == h.max_iters:   # (none where its band is too wide)
        verdict += f"; doubling max_iters would give {twice.val_loss - f.val_loss:+.3f} beyond that"
    return Finding("forecast", "forecast", lines, verdict + f" (best so far {min(vals):.3f})", "ok")


def _best_kept(cfg: C.TrainConfig | None, nanogpt: bool) -> str:
    """With val forecast to rise: whether the run's best checkpoint survives the evals to come
    (nanoGPT has no keep_checkpoints)."""
    if cfg is None:
        return ""
    if cfg.always_save_checkpoint and (nanogpt or cfg.keep_checkpoints <= 1):
        return ("; each eval overwrites ckpt.pt: to keep the best, set always_save_checkpoint = False "
                "(save only a better val)" + ("" if nanogpt else " or keep_checkpoints >= 2"))
    return "; the best checkpoint is kept"


def _decay_cut_short(h: RunHistory, r: Report, cfg: C.TrainConfig | None) -> Finding | None:
    """A cosine that decays past max_iters (nanoGPT's configs set lr_decay_iters ~= max_iters; changing
    max_iters alone leaves it): the run ends with its lr still high and the decay's gain not had.
    With the run still going, what moving lr_decay_iters to max_iters now would give, on the
    extend screen's model."""
    if cfg is None or not h.max_iters:
        return None
    end = h.max_iters
    if (left := decay_left(cfg, end)) <= DECAY_UNFINISHED:
        return None
    lines = [f"cosine decays to iter {cfg.lr_decay_iters:,}, past max_iters {end:,}: the lr ends at "
             f"{lr_at(cfg, end):.2e}, {left:.0%} of the way from min_lr {cfg.min_lr:.1e} to its peak "
             f"{cfg.learning_rate:.1e}"]
    now = h.last_iter or 0
    if r.forecast is not None and r.forecast.iter == end and now < end:
        after = C.replace(cfg, lr_decay_iters=end)
        w = extend_plan.forecast_val_loss(cfg, after, _valid_evals(h), end, now, h.vocab_size)
        if w is not None and not w.too_wide:
            lines.append(f"with lr_decay_iters = {end:,} from iter {now:,} on: val {w.val_loss:.3f} "
                         f"({w.low:.3f}-{w.high:.3f}) at iter {end:,}, against {r.forecast.val_loss:.3f} as it is")
    return Finding("decay", "lr decay", lines,
                   f"the run ends before its lr has decayed: set lr_decay_iters = max_iters ({end:,})", "warn")


# ---------------------------------------------------------------- time

def _session_starts(h: RunHistory) -> list[int]:
    starts = [s.start_iter for s in h.sessions]
    if h.steps and (not starts or h.steps[0].iter < min(starts)):
        starts.append(h.steps[0].iter)
    return sorted(set(starts))


def _warm(iters: np.ndarray, starts: list[int]) -> np.ndarray:
    warm = np.zeros(len(iters), bool)
    for s in starts:
        warm |= (iters >= s) & (iters < s + WARMUP)
    return warm


def _rolling_median(x: np.ndarray, k: int = 5) -> np.ndarray:
    half = k // 2
    return np.array([np.median(x[max(0, i - half): i + half + 1]) for i in range(len(x))])


def _timed_steps(h: RunHistory) -> list:
    return [s for s in h.steps if s.dt_ms is not None and math.isfinite(s.dt_ms) and s.dt_ms > 0]


def _steady(h: RunHistory, its: np.ndarray) -> np.ndarray:
    """Which iterations time the steady state: not warm-up, not evals (else what there is)."""
    eval_its = {e.iter for e in h.evals} | {c.iter for c in h.checkpoints}
    warm = _warm(its, _session_starts(h))
    normal = ~warm & ~np.array([i in eval_its for i in its], bool)
    if not normal.any():
        normal = ~warm if (~warm).any() else np.ones(len(its), bool)
    return normal


def _time(h: RunHistory) -> tuple[Timing, Finding]:
    steps = _timed_steps(h)
    if not steps:
        return Timing(), Finding("time", "time", ["no iteration times in this source"], "unknown", "note")
    its = np.array([s.iter for s in steps])
    dts = np.array([s.dt_ms for s in steps]) / 1000.0
    starts = _session_starts(h)
    eval_its = {e.iter for e in h.evals} | {c.iter for c in h.checkpoints}
    warm = _warm(its, starts)
    normal = _steady(h, its)
    n_its, n_dts = its[normal], _rolling_median(dts[normal])
    t = Timing(mean_iter_ms=float(dts[normal].mean() * 1000))
    timed = any(s.t is not None for s in steps) and h.kind != "nanogpt-log"
    if timed:
        _time_from_stamps(h, t, steps, n_its, n_dts, eval_its, starts)
    else:
        _time_from_dts(h, t, its, dts, warm, n_its, n_dts, eval_its)
    t.eta_s = pace.eta(h, pace.pace(h))   # the status line's and the extend screen's ETA
    lines = [f"mean iteration {t.mean_iter_ms:,.1f} ms (warm-up and eval iterations excluded)"]
    if t.duration_s is not None:
        lines.append(f"duration {human_duration(t.duration_s)} for {t.iterations:,} iterations "
                     f"({t.method}{'' if t.method == 'timestamps' else ', estimated'})")
    if t.eval_overhead is not None:
        each = f", {t.eval_pause_s:.1f} s each" if t.eval_pause_s is not None else ""
        some = t.evals < t.evals_total
        count = f"{t.evals} of {t.evals_total} evals" if some else f"{t.evals} evals"
        lines.append(f"evals/checkpoints {human_duration(t.eval_overhead_s)} = {t.eval_overhead:.2%} of wall time "
                     f"({count}{each}{'; the rest fall in start-up' if some else ''})")
    if t.startup_s:
        lines.append(f"start-up (compile, first eval) {human_duration(t.startup_s)}")
    if t.wall_iter_ms:
        lines.append(f"{t.wall_iter_ms:,.1f} ms of wall time per iteration between evals")
    if t.paused_s:
        lines.append(f"paused {human_duration(t.paused_s)}")
    if t.eta_s is not None:
        lines.append(f"ETA {human_duration(t.eta_s)} to max_iters {h.max_iters:,}")
    if t.eval_overhead is None:
        verdict, level = "eval overhead not measurable (no logged iteration coincides with an eval)", "note"
    elif t.eval_overhead > 0.1:
        verdict, level = "evals cost over 10% of the time: raise eval_interval or lower eval_iters", "warn"
    else:
        verdict, level = "eval overhead is small", "ok"
    return t, Finding("time", "time", lines, verdict, level)


def _time_from_dts(h: RunHistory, t: Timing, its: np.ndarray, dts: np.ndarray, warm: np.ndarray,
                   n_its: np.ndarray, n_dts: np.ndarray, eval_its: set[int]) -> None:
    t.method = "iteration times"
    first, last = int(its.min()), int(h.last_iter if h.last_iter is not None else its.max())

    def base(i: int) -> float:
        return float(np.interp(i, n_its, n_dts))

    logged = dict(zip(its.tolist(), dts.tolist()))
    warm_its = set(its[warm].tolist())
    # an eval iteration a little faster than its neighbours cost nothing, not negative time
    excess = [max(0.0, logged[i] - base(i)) for i in sorted(eval_its) if i in logged and i not in warm_its]
    pause = float(np.mean(excess)) if excess else None
    unlogged_evals = [i for i in eval_its if first <= i <= last and i not in logged]
    n_logged = [i for i in logged if first <= i <= last]
    total = sum(logged[i] - base(i) for i in n_logged) + _interp_sum(first, last, n_its, n_dts)
    t.iterations = last - first + 1
    t.startup_s = float(sum(max(0.0, logged[i] - base(i)) for i in warm_its if first <= i <= last))
    t.evals = len(excess) + len(unlogged_evals)
    t.evals_total = sum(first <= i <= last for i in eval_its)
    if pause is None:
        t.duration_s = total if not unlogged_evals else None
        return
    t.eval_pause_s = pause
    t.eval_overhead_s = float(sum(excess)) + pause * len(unlogged_evals)
    t.duration_s = total + pause * len(unlogged_evals)
    t.train_s = t.duration_s - t.eval_overhead_s - t.startup_s
    t.eval_overhead = t.eval_overhead_s / t.duration_s


def _interp_sum(first: int, last: int, xp: np.ndarray, fp: np.ndarray) -> float:
    """sum(np.interp(i, xp, fp) for i in first..last), from the knots alone: linear between
    them, so a gap of many iterations costs no more than a short one."""
    if last < first:
        return 0.0
    inside = xp[(xp > first) & (xp < last)]
    pts = np.unique(np.concatenate([[first, last], inside]).astype(np.int64))
    f = np.interp(pts, xp, fp)
    n = np.diff(pts)            # integers p0 .. p1-1 of each piece, a linear run from f0 towards f1
    return float((n * f[:-1] + (f[1:] - f[:-1]) * (n - 1) / 2).sum() + f[-1])


def _time_from_stamps(h: RunHistory, t: Timing, steps: list, n_its: np.ndarray, n_dts: np.ndarray,
                      eval_its: set[int], starts: list[int]) -> None:
    t.method = "timestamps"
    t.duration_s = sum((s.t_end - s.t_start) for s in h.sessions
                       if s.t_start is not None and s.t_end is not None)
    evals = sorted(eval_its)
    eval_s = paused = startup = stepping = 0.0
    stepped = 0
    pauses: list[float] = []
    prev = None
    for s in steps:
        if s.t is None:
            continue
        if prev is not None and s.iter > prev.iter and s.iter not in starts:
            expected = _interp_sum(prev.iter + 1, s.iter, n_its, n_dts)
            held = h.paused_between(prev.t, s.t)   # the engine said paused
            paused += held
            extra = max(0.0, (s.t - prev.t) - held - expected)
            inside = [e for e in evals if prev.iter < e <= s.iter]
            if inside:
                eval_s += extra
                pauses += [extra / len(inside)] * len(inside)
            elif extra > PAUSE_STEPS * expected / (s.iter - prev.iter):
                paused += extra
            else:   # logging, event writing: part of what an iteration costs
                stepping += s.t - prev.t - held
                stepped += s.iter - prev.iter
        prev = s
    for extra, n in _after_last_steps(h, steps, evals):
        eval_s += extra
        pauses += [extra / n] * n
    if stepped:
        t.wall_iter_ms = stepping / stepped * 1000
    for sess in h.sessions:   # hello -> first step: model build, data, the eval at the start
        first = next((s for s in steps if s.t is not None and s.iter >= sess.start_iter), None)
        if first is not None and sess.t_start is not None and first.t >= sess.t_start:
            startup += first.t - sess.t_start
    t.iterations = (h.last_iter or 0) - (starts[0] if starts else 0)
    t.startup_s, t.paused_s = startup, paused
    t.evals = len(pauses)
    t.evals_total = sum(e >= (starts[0] if starts else 0) for e in evals)
    if pauses and t.duration_s:
        t.eval_pause_s = statistics.fmean(pauses)
        t.eval_overhead_s = eval_s
        t.eval_overhead = eval_s / t.duration_s
        t.train_s = t.duration_s - eval_s - startup - paused
    elif t.duration_s:
        t.eval_overhead_s, t.eval_overhead = 0.0, 0.0
        t.train_s = t.duration_s - startup - paused


def _after_last_steps(h: RunHistory, steps: list, evals: list[int]) -> list[tuple[float, int]]:
    """(seconds, evals) each session spent after its last step on evals it made then (the eval
    at max_iters and its checkpoint, or the checkpoint of a stop)."""
    out = []
    sessions = sorted(h.sessions, key=lambda x: x.start_iter)
    for k, sess in enumerate(sessions):
        last = k + 1 == len(sessions)
        bound = (h.last_iter or 0) if last else sessions[k + 1].start_iter
        mine = [s for s in steps if s.t is not None and sess.start_iter <= s.iter and (last or s.iter < bound)]
        if not mine or sess.t_end is None:
            continue
        n = sum(mine[-1].iter < e <= bound for e in evals)
        if n:
            out.append((max(0.0, sess.t_end - mine[-1].t), n))
    return out


# ---------------------------------------------------------------- MFU

def _world_sizes(h: RunHistory, its: np.ndarray) -> np.ndarray:
    """Processes that trained each iteration: its session's hello `world_size` (1 when unknown)."""
    ws = np.ones(len(its))
    for s in sorted(h.sessions, key=lambda s: s.start_iter):
        ws[its >= s.start_iter] = s.world_size
    return ws


def _gpu_flops_per_s(h: RunHistory, fpi: float) -> float | None:
    """FLOP/s one GPU achieved in steady steps: total FLOPs over total step time.

    `fpi` is one iteration's FLOPs over all ranks; each rank did fpi / world_size of them in
    that step's dt (the engine's dt is rank 0's, and the ranks wait for each other)."""
    steps = _timed_steps(h)
    if not steps:
        return None
    its = np.array([s.iter for s in steps])
    dts = np.array([s.dt_ms for s in steps]) / 1000.0
    steady = _steady(h, its)
    return float(fpi * np.sum(1.0 / _world_sizes(h, its)[steady]) / dts[steady].sum())


def _mfu(h: RunHistory, cfg: C.TrainConfig | None, params: int | None, timing: Timing,
         device: str | None) -> tuple[dict[str, Any], Finding]:
    """MFU per GPU: one rank's FLOPs over its step time, against one GPU's dense peak for the dtype.

    Two figures, averaged differently:
      - `reported_mean`: the plain mean of the logged per-step values after warm-up. The engine's
        step mfu = (FLOPs of this rank's micro-batches) / that step's dt / peak (trainer.py); a
        nanoGPT log's is its running average against the A100 constant.
      - `mfu`: the doctor's own, total over total: (6N + 12LCT) x tokens_per_iter / world_size
        FLOPs per steady step (warm-up and eval iterations excluded), summed, over the summed dt
        of those steps, over the peak. A mean of ratios weighs fast steps a little more, so with
        jittery step times the engine's mean sits slightly above; with steady ones they agree.
    tokens_per_iter (the hello's) counts all ranks, hence the division by the world size.
    """
    known = h.device
    ran_on = known.get("device") or h.config.get("device")
    on_cpu = str(device or ran_on or "").strip().lower() == "cpu"
    if on_cpu and str(ran_on).lower() == "cpu":
        device = None   # no table has a CPU's peak: only the one the engine measured or was given
    dev_name = device or known.get("device_name") or known.get("device") or ("cpu" if on_cpu else None)
    dtype = known.get("dtype") or _config_dtype(h) or "bfloat16"
    peak = table_peak(dev_name, dtype) if device else (_num(known.get("peak_flops")) or
                                                       (table_peak(dev_name, dtype) if dev_name else None))
    world = h.sessions[-1].world_size if h.sessions else 1
    m: dict[str, Any] = {"device": dev_name, "on_cpu": on_cpu, "device_peak_flops": peak, "mfu": None, "world_size": world,
                         "reported_mean": None, "reported_peak_flops": h.mfu_peak, "flops_per_iter": None}
    starts = _session_starts(h)
    vals = [s.mfu for s in h.steps if s.mfu is not None and math.isfinite(s.mfu)
            and not any(st <= s.iter < st + WARMUP for st in starts)]
    if vals:
        m["reported_mean"] = round(statistics.fmean(vals), 5)
    # FLOPs per iteration, all ranks: the config's (nanoGPT's 6N + 12LCT per token), else inverted
    # from the first measured MFU line (a per-rank figure: nanoGPT's running average starts at that
    # iteration's own value), times that iteration's world size.
    fpi = None
    if cfg is not None and params:
        fpi = (6 * params + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size) * (h.tokens_per_iter or 0) or None
    if fpi is None and h.mfu_peak:
        first = next((s for s in h.steps if s.mfu and s.dt_ms and not any(st <= s.iter < st + WARMUP for st in starts)),
                     None)
        if first is not None:
            fpi = first.mfu * h.mfu_peak * first.dt_ms / 1000 * _world_sizes(h, np.array([first.iter]))[0]
    m["flops_per_iter"] = fpi
    lines = []
    a100 = h.mfu_peak == NANOGPT_A100_PEAK
    if vals:
        against = (f"nanoGPT's A100 constant ({NANOGPT_A100_PEAK / 1e12:.0f} TFLOP/s)"
                   if a100 else f"{(h.mfu_peak or 0) / 1e12:.3g} TFLOP/s")
        avg = "running average" if h.mfu_smoothed else "mean"
        lines.append(f"reported {avg} {m['reported_mean']:.2%} against {against} (warm-up excluded)")
    achieved = _gpu_flops_per_s(h, fpi) if fpi else None
    per_gpu = f" per GPU ({world} processes)" if world > 1 else ""
    if achieved:
        if a100:
            m["steady_vs_a100"] = round(achieved / NANOGPT_A100_PEAK, 5)
            lines.append(f"steady state {m['steady_vs_a100']:.2%} vs the A100 constant "
                         f"({achieved / 1e12:.3g} TFLOP/s achieved{per_gpu}; evals excluded)")
            a100_dtype = table_peak("A100", dtype)
            if a100_dtype and a100_dtype != NANOGPT_A100_PEAK:   # the constant is the bf16 peak
                m["steady_vs_a100_dtype"] = round(achieved / a100_dtype, 5)
                lines.append(f"trained in {dtype}: {m['steady_vs_a100_dtype']:.2%} of an A100's {dtype} peak "
                             f"({a100_dtype / 1e12:.0f} TFLOP/s; nanoGPT's constant is its bf16 peak)")
        if peak:
            m["mfu"] = round(achieved / peak, 5)
    elif h.kind != "nanogpt-log" and vals and peak:
        m["mfu"] = m["reported_mean"] * (h.mfu_peak or peak) / peak
    if m["mfu"] is not None:
        how = "total FLOPs over total step time" if achieved else "the reported mean rescaled"
        lines.append(f"MFU {m['mfu']:.1%}{per_gpu} of {dev_name}'s {peak / 1e12:.3g} TFLOP/s ({dtype}), {how}")
        verdict = ("low: check the batch size, compile and dtype" if m["mfu"] < 0.2 else
                   "typical for a small GPT" if m["mfu"] < 0.5 else "high: well used")
        level = "note" if m["mfu"] < 0.2 else "ok"
    elif not vals and not achieved:
        verdict, level = "no MFU figures or step times in this source", "note"
    elif on_cpu and not peak:
        verdict, level = ("the run was on a CPU, where no GPU peak applies" + (
            f": nanoGPT's MFU is against an A100's peak ({NANOGPT_A100_PEAK / 1e12:.0f} TFLOP/s), so it means "
            "little here" if a100 else ", and this source gives no measured peak to take MFU against")), "note"
    elif a100:
        verdict, level = ("the log's MFU is against an A100 whatever the card: pass --device "
                          "(e.g. --device 'RTX 4070') to get MFU against the real peak"), "note"
        if dev_name and not peak:
            verdict = f"no peak FLOP/s known for {dev_name!r}; the log's MFU is against an A100"
    else:
        verdict, level = "MFU unknown (no device peak)", "note"
        if dev_name and not peak:
            verdict = f"MFU unknown: no peak FLOP/s figure for {dev_name!r} ({dtype})"
    return m, Finding("mfu", "MFU", lines or ["no MFU figures"], verdict, level)


def _config_dtype(h: RunHistory) -> str | None:
    """The dtype the source's config (or a log's `Overriding: dtype = ...`) sets; None for auto."""
    dtype = h.config.get("dtype")
    return dtype if isinstance(dtype, str) and dtype in C.CHOICES["dtype"] and dtype != "auto" else None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 else None


# ---------------------------------------------------------------- text

def render(r: Report) -> str:
    head = f"{r.source}: {'nanoGPT log' if r.kind == 'nanogpt-log' else 'run'}"
    if r.last_iter is not None:
        head += f", iter {r.last_iter:,}" + (f" of {r.max_iters:,}" if r.max_iters else " (max_iters unknown)")
    out = [head]
    mark = {"ok": "ok  ", "note": "note", "warn": "WARN"}
    for f in r.findings:
        out.append(f"{f.title:<14}{f.lines[0]}")
        out += [f"{'':<14}{line}" for line in f.lines[1:]]
        out.append(f"{'':<14}[{mark[f.level]}] {f.verdict}")
    return "\n".join(out)
