"""`gpttui launch [demo | CONFIG | RUN_DIR] [--key=value ...]`: the dashboard on a run.

`demo`, or nothing at all: the bundled demo in ./gpttui-demo (made on first use, resumed after;
`demo --max_iters=...` with overrides; `--out_dir=DIR` puts it, its data included, in DIR).
Config flags with no target: nanoGPT's defaults plus the flags, as `python train.py --key=value`
(never the demo). A config file (.py or .toml): a new run
in its out_dir. A run directory: its history, then resume (or attach, when its engine is still
running). Config problems and a run directory that can't be written are reported here, in one
line, before the dashboard opens. `--nproc_per_node=N` (and torchrun's flags for several
machines, as `gpttui train` takes them) runs every engine the dashboard starts as a torchrun job;
they are not config flags, so they never change which of these applies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gpttui.commands import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED, run_app
from gpttui.commands.train import add_runner_arguments, replaced_run, runner_flags, world_size, world_size_error
from gpttui.fs.writable import check_writable
from gpttui.run import config as C
from gpttui.run import directory, layout, sizing

HELP = "open the dashboard on a config, a run directory, or the bundled demo"
OVERRIDES = True
DEMO = "demo"  # the target naming the bundled demo (a path of that name: ./demo)


class LaunchError(Exception):
    """Said to the user in one line; nothing has started."""


class CannotWrite(LaunchError):
    """The run (or its data) would be written where it can't be: exit 1, as any failed write."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?",
                   help="nanoGPT .py or .toml config, a run directory, or `demo` (the bundled demo in "
                        "./gpttui-demo; also what no target and no config flags open)")
    p.add_argument("--force", action="store_true",
                   help="start from scratch even if out_dir already holds a run (its ckpt.pt is replaced)")
    add_runner_arguments(p)
    p.epilog = ("Config overrides, nanoGPT style: --batch_size=8 --max_iters=2000. With no target they "
                "apply to nanoGPT's defaults, as `python train.py --dataset=... --out_dir=...` does.")


def run(args: argparse.Namespace) -> int:
    try:
        runner = runner_flags(args)
        plan = make_plan(args.target, args.overrides, world_size(args), force=args.force)
        if runner and plan.attach:
            raise LaunchError(f"{plan.run_dir}: its engine is running; the job's size can't change under it "
                              f"(`gpttui launch {plan.run_dir}` without torchrun's flags attaches)")
    except directory.RunDirLocked as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOCKED
    except CannotWrite as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except (LaunchError, C.ConfigError, directory.RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from gpttui.app import GpttuiApp  # Textual is imported only once the plan holds
    from gpttui.ipc.process import EngineClient

    EngineClient.runner = runner
    return run_app(GpttuiApp(plan))


def make_plan(target: str | None, overrides: list[str], world: int = 1, force: bool = False):
    """What to open and start; `world`: the processes of each engine job (torchrun's)."""
    if target == DEMO or (target is None and not overrides):
        return _demo_plan(overrides, world)
    if target is None:  # nanoGPT's `python train.py --key=value ...`
        return _new_run_plan(C.load(None, overrides), world, force)
    path = Path(target)
    if path.is_dir():
        if not (path / layout.CONFIG).is_file():
            raise LaunchError(f"{path}: not a run directory (no {layout.CONFIG}); "
                              "give a config file to start a run")
        return _run_dir_plan(path, overrides, world)
    if not path.exists():
        raise LaunchError(f"{path}: no such config file or run directory")
    return _new_run_plan(C.load(path, overrides), world, force)


def _demo_plan(overrides: list[str], world: int):
    from gpttui.app import DataToPrepare, LaunchPlan
    from gpttui.run import demo

    run_dir = Path.cwd() / demo.DIR_NAME
    if moved := [o for o in overrides if o.startswith("--out_dir=")]:   # the demo, its data included, there
        run_dir = Path(C.parse_overrides(moved[-1:])["out_dir"]).expanduser().resolve()
        overrides = [o for o in overrides if o not in moved]
    if (run_dir / layout.CONFIG).is_file():
        plan = _run_dir_plan(run_dir, overrides, world)
        plan.note = "demo"
        return plan
    cfg = C.replace(demo.demo_config(run_dir, world), **demo.follow_max_iters(C.parse_overrides(overrides)))
    loaded = C.LoadedConfig(cfg, None, "", {})
    _check(loaded.config, world)
    _check_writable(run_dir)
    need = None if demo.data_ready(run_dir) else DataToPrepare(run_dir / "data", demo.TEXT, "char")
    return LaunchPlan(run_dir, loaded, prepare=need, note="demo", new_run=True,
                      warnings=sizing.config_warnings(cfg))


def _new_run_plan(loaded: C.LoadedConfig, world: int, force: bool):
    """A new run in the config's out_dir; its config.toml is written now when the data is there
    (after the data is prepared otherwise)."""
    from gpttui.app import LaunchPlan

    cfg = loaded.config
    _check(cfg, world)
    run_dir = Path(cfg.out_dir)
    replaced = replaced_run(cfg)
    if replaced and not force:
        raise LaunchError(f"{run_dir}: already holds a run ({directory.describe_run(run_dir)}): open it with "
                          f"`gpttui launch {run_dir}` to resume, choose another out_dir, or replace it with --force")
    need = _missing_data(cfg)
    if need is not None and replaced:  # the dashboard writes config.toml after preparing, never over a run
        raise LaunchError(f"{need.data_dir}: no data yet; prepare it first (`gpttui prepare ... --out "
                          f"{need.data_dir}`), then replace the run in {run_dir} with --force")
    if need is None:  # refused now (exit 3 while an engine trains there), before the dashboard opens
        cfg, _ = directory.prepare(cfg, run_dir, force=force)  # writes RUN_DIR/config.toml, under the run's lock
        loaded = C.LoadedConfig(cfg, loaded.source, loaded.source_text, loaded.overrides)
    else:
        _check_writable(need.data_dir)
        _check_writable(run_dir)
    if replaced:
        print(f"warning: --force: {replaced}", file=sys.stderr)
    return LaunchPlan(run_dir, loaded, prepare=need, new_run=True, force=force,
                      warnings=sizing.config_warnings(loaded.config, loaded.source_text, loaded.source))


def _run_dir_plan(run_dir: Path, overrides: list[str], world: int):
    from gpttui.app import LaunchPlan
    from gpttui.run import engine_state

    loaded = C.load(run_dir, overrides)
    loaded.config = cfg = directory.follow_dataset(loaded.config, loaded.overrides)
    _check(cfg, world)
    status = engine_state.status(run_dir)
    if status.kind == "alive":
        if overrides:
            raise LaunchError(f"{run_dir}: its engine is running (pid {status.info.pid if status.info else '?'}); "
                              "overrides can't apply to a running run: change live fields from the dashboard")
        return LaunchPlan(run_dir, loaded, start=False, attach=True)
    try:
        directory.check_engine_can_write(run_dir)
    except OSError as e:
        raise CannotWrite(f"cannot write {e.filename}: {e.strerror}; an engine can't train there "
                          f"(`gpttui open {run_dir}` shows it read-only)") from None
    init_from = directory.start_from(run_dir, cfg)
    need = _missing_data(cfg)
    if init_from == "resume" and need is None:  # what the engine would refuse, said before the dashboard
        directory.check_resume(cfg, run_dir / layout.CKPT, sizing.data_vocab_size(cfg.resolved_data_dir()))
    args = [f"--init_from={init_from}", *overrides]
    if not cfg.data_dir:  # a new --dataset: the run's data_dir follows it, pinned as for a new run
        args.append(f"--data_dir={str(cfg.resolved_data_dir().resolve())!r}")
    return LaunchPlan(run_dir, loaded, engine_args=args, prepare=need)


def _missing_data(cfg: C.TrainConfig):
    from gpttui.app import DataToPrepare

    d = cfg.resolved_data_dir()
    if (d / "train.bin").is_file() and (d / "val.bin").is_file():
        directory.check_data(cfg)  # sizes and vocabulary: fail here, in one line
        return None
    tokenizer = "char" if cfg.dataset.endswith("_char") else "gpt2"
    return DataToPrepare(d, None, tokenizer)


def _check_writable(path: Path) -> None:
    """A new run's directory (or its data's) must be writable: said now, not in the dashboard."""
    try:
        check_writable(path)
    except OSError as e:
        raise CannotWrite(f"cannot write {e.filename}: {e.strerror}") from None


def _check(cfg: C.TrainConfig, world: int) -> None:
    errors = C.validate(cfg)
    if error := world_size_error(cfg, world):
        errors.append(error)
    if errors:   # one line each, as train says them
        raise LaunchError("\nerror: ".join(errors))
