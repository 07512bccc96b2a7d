"""What a run directory holds, and the states a run goes through: the one place for both.

A run directory is the record of a run (the README's "What happens when things fail"):
everything a UI shows is rebuilt from these files.
"""

from __future__ import annotations

CONFIG = "config.toml"      # the run's config, rewritten by live changes
CKPT = "ckpt.pt"            # the latest checkpoint (nanoGPT's format); older ones as ckpt-ITER.pt
METRICS = "metrics.jsonl"   # every event, append-only
ENGINE_LOG = "engine.log"   # the human log, and a native crash's Python stack
ENGINE_LOCK = "engine.lock"  # flock held for an engine's life
ENGINE_STATUS = "engine.json"  # pid, host, state, iteration, heartbeat
ENGINE_SOCKET = "engine.sock"  # the control socket (owner-only)
SAMPLES = "samples.jsonl"   # text sampled at checkpoints

# nanoGPT sample.py prints this line between samples; `gpttui sample` and the pane do too
SAMPLE_SEPARATOR = "---------------"

# The states of the protocol's `state` event, in the order a run meets them.
STATES = ("starting", "running", "paused", "evaluating", "saving", "finished", "stopped", "failed")
FINAL_STATES = frozenset({"finished", "stopped", "failed"})  # the engine has exited or is exiting
ACTIVE_STATES = frozenset(STATES) - FINAL_STATES              # an engine is there
# an engine is computing: a sampler beside it takes one CPU thread (a paused run leaves the cores free)
TRAINING_STATES = ACTIVE_STATES - {"paused"}
