"""`gpttui doctor RUN|LOG [--config FILE] [--until N] [--forecast-at N] [--device NAME] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys

from gpttui.commands import EXIT_BAD_INPUT, load_history

HELP = "judge a run or nanoGPT log: parameters, tokens, trend, forecast, time, MFU"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory, metrics.jsonl, or a nanoGPT train.py log")
    p.add_argument("--config", metavar="FILE",
                   help="the config a log without a config header ran with (nanoGPT .py or TOML): "
                        "tokens, parameters and the lr schedule then follow from it")
    p.add_argument("--until", type=int, metavar="N", help="judge the run as it stood at iteration N")
    p.add_argument("--forecast-at", type=int, metavar="N", help="also forecast val loss at iteration N")
    p.add_argument("--device", metavar="NAME",
                   help="GPU the run used (e.g. 'RTX 4070'), for MFU against its real peak")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from gpttui.analysis import doctor

    for name in ("until", "forecast_at"):
        value = getattr(args, name)
        if value is not None and value < 0:
            print(f"error: --{name.replace('_', '-')}: expected an iteration >= 0, got {value}", file=sys.stderr)
            return EXIT_BAD_INPUT
    history = load_history(args.run)
    if history is None:
        return EXIT_BAD_INPUT
    if args.config is not None:
        from pathlib import Path

        from gpttui.analysis.opened_run import with_config
        from gpttui.run import config as C

        try:
            with_config(history, Path(args.config))
        except C.ConfigError as e:
            print(f"error: --config: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.until is not None:
        history = history.until(args.until)
    report = doctor.diagnose(history, forecast_at=args.forecast_at, device=args.device)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(doctor.render(report))
    return 0
