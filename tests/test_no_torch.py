"""The UI process never imports torch (start-up stays fast; a CUDA crash can't take the UI down)."""

from __future__ import annotations

import subprocess
import sys

UI_MODULES = [
    "gpttui.app", "gpttui.ipc.process", "gpttui.analysis.live", "gpttui.run.demo", "gpttui.commands.launch",
    "gpttui.screens.dashboard", "gpttui.screens.confirm", "gpttui.screens.help",
    "gpttui.screens.failure", "gpttui.screens.prepare_data",
    "gpttui.analysis.series", "gpttui.widgets.loss_chart", "gpttui.widgets.spark",
    "gpttui.widgets.eval_table", "gpttui.widgets.status", "gpttui.widgets.header",
    "gpttui.widgets.log_pane", "gpttui.widgets.system", "gpttui.widgets.fmt",
]
# Screens other developers own, checked when they exist.
OPTIONAL = ["gpttui.screens.config", "gpttui.screens.extend", "gpttui.screens.sample", "gpttui.screens.doctor"]

SCRIPT = """
import importlib, importlib.util, sys
for name in {required!r}:
    importlib.import_module(name)
for name in {optional!r}:
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_ui_modules_leave_torch_unimported():
    code = SCRIPT.format(required=UI_MODULES, optional=OPTIONAL)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_help_is_fast_and_torch_free():
    code = ("import sys, runpy; sys.argv = ['gpttui', 'launch', '--help']\n"
            "try:\n    runpy.run_module('gpttui', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "gpttui launch" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"
