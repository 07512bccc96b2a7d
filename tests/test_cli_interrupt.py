"""Ctrl+C while gpttui is still importing itself exits 130 quietly, as every later interrupt does.

Real SIGINTs to a real `gpttui doctor` process: `-X importtime` says on stderr when gpttui.cli has
been imported, and from then on SIGINT is sent again and again until the process exits, so the
first lands while the chosen command's module (the doctor's numpy and analysis) is still importing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

LOG = Path(__file__).parent / "fixtures/nanogpt/train_log_shakespeare_char_cpu_cos3000.txt"
SCRIPT = Path(sys.executable).with_name("gpttui")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _interrupt_during_imports(launcher: list[str]) -> tuple[int, str]:
    """(exit code, stderr without the import-time lines) of `gpttui doctor LOG` sent SIGINT
    repeatedly from the end of gpttui.cli's import until it exits."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *launcher, "doctor", str(LOG)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if line.rstrip().endswith("| gpttui.cli"):
            break

    def keep_interrupting() -> None:
        while proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.01)

    sender = threading.Thread(target=keep_interrupting)
    sender.start()
    lines += proc.stderr.readlines()
    code = proc.wait(timeout=60)
    sender.join()
    return code, "".join(s for s in lines if not s.startswith("import time:"))


def test_python_m_gpttui_interrupted_while_importing_exits_130_without_traceback():
    code, err = _interrupt_during_imports(["-m", "gpttui"])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert code == 130


@pytest.mark.skipif(not SCRIPT.exists(), reason="no gpttui console script next to this interpreter")
def test_console_script_interrupted_while_importing_exits_130_without_traceback():
    code, err = _interrupt_during_imports([str(SCRIPT)])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert code == 130
