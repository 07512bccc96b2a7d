"""The dashboard's start of a new run hands the run's lock from its checks to the engine, as
`gpttui train` does: from config.toml written under the lock (launch's own check wrote it once
before the dashboard opened; the dashboard writes it again as it starts the engine) until the
engine trains, no other start can take the run."""

from __future__ import annotations

import threading
import time

from app_helpers import run, tiny_config, wait_for

from gpttui.app import GpttuiApp
from gpttui.commands.launch import make_plan
from gpttui.fs import lock
from gpttui.run import engine_state


def test_the_dashboard_hands_the_lock_to_its_engine_with_no_moment_free(tmp_path, char_data):
    plan = make_plan(str(tiny_config(tmp_path, char_data)), [])
    run_dir = plan.run_dir
    probes, free, done = [0], [0], threading.Event()
    launch_written = (run_dir / "config.toml").stat().st_ino  # atomic writes: a new file each time

    def probe() -> None:  # from launch's checks (config.toml written) until the engine says it runs
        while not done.is_set():
            info = engine_state.read_info(run_dir)
            if info is not None and info.state == "running":
                return
            if (run_dir / "config.toml").stat().st_ino != launch_written:
                probes[0] += 1
                free[0] += not lock.is_held(run_dir / "engine.lock")
            time.sleep(0.005)

    async def go():
        app = GpttuiApp(plan)
        ctl = app.controller
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: ctl.live.iter >= 2, 90, "the engine training")
                prober.join(timeout=10)
                ctl.engine.send("stop")
                await wait_for(pilot, lambda: not ctl.engine_alive, 60, "the engine stopping")
        finally:
            done.set()

    run(go())
    assert probes[0] > 10 and free[0] == 0, f"the run's lock was free at {free[0]} of {probes[0]} probes"
