"""How long the config editor (key c) takes to open over the dashboard, against the help screen
(key ?) opened the same way as the baseline: median of several opens each.

"Open" is from the key press until the screen is drawn showing it, for the editor with a key
typed right after c in its first field: wall time, and the CPU time the process spent meanwhile
(less sensitive to other load on the machine); "typed" is until that key has landed. The keys
are posted to the app as the terminal driver posts them, in one burst (the pilot's press() waits
for the app to go idle after each key, which would count its own waiting). The run is a finished
tiny run written directly (no engine), the app headless (App.run_test) at 120x40. The first open
comes SETTLE_S after the run is read, as a user's first c comes after a look at the dashboard;
it builds the editor while the user waits, a repeat one shows the kept editor again.

    python bench/config_open.py [--opens 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.screen import Screen

from gpttui.app import GpttuiApp, LaunchPlan
from gpttui.run import config as C
from gpttui.run import layout, protocol
from gpttui.run.metrics import MetricsWriter
from gpttui.screens.config import ConfigScreen
from gpttui.screens.dashboard import DashboardScreen
from gpttui.screens.help import HelpScreen

SETTLE_S = 2.0   # from the run read to the first key


def written_run(root: Path) -> LaunchPlan:
    """A finished 20-iteration run directory, as the engine leaves it."""
    run_dir = root / "run"
    run_dir.mkdir()
    cfg = C.replace(C.DEFAULTS, out_dir=str(run_dir), max_iters=20, lr_decay_iters=20, eval_interval=10,
                    n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=4, device="cpu")
    C.save(cfg, run_dir / layout.CONFIG)
    writer = MetricsWriter(run_dir / layout.METRICS)
    writer.write(protocol.event("hello", 0, version=1, config=cfg.to_dict(), params={"nanogpt": 100_000},
                                device="cpu", dtype="float32", peak_flops=1e11, tokens_per_iter=128,
                                start_iter=0, max_iters=20))
    for i in range(20):
        writer.write(protocol.event("step", i, loss=4.2 - i / 10, lr=1e-3, dt_ms=5.0, tokens_per_s=25_600.0,
                                    mfu=0.01, grad_norm=1.0, tokens=128 * (i + 1)))
    writer.write(protocol.event("state", 20, state="finished"))
    writer.close()
    return LaunchPlan(run_dir, C.load(run_dir), start=False)


async def until(pred, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.002)


async def drawn(screen: Screen) -> None:
    """Until `screen` has been drawn with what it holds now."""
    done = asyncio.Event()
    screen.call_after_refresh(done.set)
    await asyncio.wait_for(done.wait(), 30)


def typed(app: GpttuiApp, cls: type[Screen]) -> bool:
    s = app.screen
    if not (isinstance(s, cls) and s.is_mounted):
        return False
    return not isinstance(s, ConfigScreen) or (s.editor.field == "n_layer" and s.editor.value.endswith("9"))


async def measure(plan: LaunchPlan, opens: int) -> dict[str, list[float]]:
    app = GpttuiApp(plan)
    times: dict[str, list[float]] = {f"{n}{what}": [] for n in ("help", "config") for what in ("", "_cpu", "_typed")}
    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: not app.controller.loading and isinstance(app.screen, DashboardScreen))
        await pilot.pause(SETTLE_S)
        for _ in range(opens):
            for name, key, cls in (("help", "question_mark", HelpScreen), ("config", "c", ConfigScreen)):
                t0, c0 = time.perf_counter(), time.process_time()
                app.post_message(events.Key(key, "?" if key == "question_mark" else key))
                if cls is ConfigScreen:
                    app.post_message(events.Key("9", "9"))   # typed at once: it must land in the first field
                await until(lambda: typed(app, cls))
                times[f"{name}_typed"].append(time.perf_counter() - t0)
                await drawn(app.screen)
                times[name].append(time.perf_counter() - t0)
                times[f"{name}_cpu"].append(time.process_time() - c0)
                await pilot.pause(0.3)
                app.post_message(events.Key("escape", None))
                await until(lambda: isinstance(app.screen, DashboardScreen))
                await pilot.pause(0.3)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--opens", type=int, default=7)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(measure(written_run(Path(tmp)), args.opens))
    for name, what in (("help", "help screen (baseline)"), ("config", "config editor")):
        wall, cpu, key = times[name], times[f"{name}_cpu"], times[f"{name}_typed"]
        print(f"{what:24s} median {statistics.median(wall) * 1000:7.1f} ms wall, "
              f"{statistics.median(cpu) * 1000:7.1f} ms CPU  of {len(wall)} opens "
              f"(first {wall[0] * 1000:.1f} ms wall, {cpu[0] * 1000:.1f} ms CPU)")
        if name == "config":
            print(f"{'  key typed after c in':24s} median {statistics.median(key) * 1000:7.1f} ms "
                  f"(first {key[0] * 1000:.1f} ms)")
    print(f"ratio config / help      {statistics.median(times['config']) / statistics.median(times['help']):.1f}x wall, "
          f"{statistics.median(times['config_cpu']) / statistics.median(times['help_cpu']):.1f}x CPU")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
