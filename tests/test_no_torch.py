"""The UI process never imports torch (start-up stays fast; a CUDA crash can't take the UI down).

`lint-imports` checks the static rule (only gpttui.engine imports torch); this checks what
really happens at import time, in a fresh interpreter, for every module outside the engine,
found by walking the package: a new module is covered without being listed here.
"""

from __future__ import annotations

import subprocess
import sys

# Not imported: gpttui.__main__ (it runs the CLI) and gpttui.engine, whose processes use torch.
SCRIPT = """
import importlib, pkgutil, sys
import gpttui

SKIP = {"gpttui.__main__", "gpttui.engine"}

def modules(path, prefix):
    for m in pkgutil.iter_modules(path, prefix):
        if m.name not in SKIP:
            yield m.name
            if m.ispkg:
                yield from modules(importlib.import_module(m.name).__path__, m.name + ".")

names = list(modules(gpttui.__path__, "gpttui."))
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_every_module_outside_the_engine_leaves_torch_unimported():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, loaded = out.stdout.strip().split(" ", 1)
    assert loaded == "[]"
    assert int(count) > 40  # the walk found the package (app, viewer, screens, widgets, commands ...)


def test_help_is_fast_and_torch_free():
    code = ("import sys, runpy; sys.argv = ['gpttui', 'launch', '--help']\n"
            "try:\n    runpy.run_module('gpttui', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "gpttui launch" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"
