"""`gpttui export … --chart FILE.png|.svg|.pdf`: a real picture of four panels (train and val loss,
lr, ms/iteration, MFU), several runs overlaid; a clear line when matplotlib is missing."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpttui import cli

pytest.importorskip("matplotlib", reason="the [plots] extra is not installed")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nanogpt"
LOGS = [FIXTURES / "train_log_fineweb_124m.txt", FIXTURES / "train_log_fineweb_40m.txt"]
SVG = "{http://www.w3.org/2000/svg}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_is_a_picture_of_the_run(tmp_path, capsys):
    out = tmp_path / "loss.png"
    assert cli.main(["export", str(LOGS[0]), "--chart", str(out)]) == 0
    width, height = png_size(out.read_bytes())
    assert width >= 1000 and height >= 700 and out.stat().st_size > 20_000
    assert "loss, learning rate, time per iteration (ms), MFU (%)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]        # no temporaries left


def svg_axes(path: Path) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    return [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("axes_")]


def test_svg_has_four_panels_and_overlays_several_runs(tmp_path):
    one, two = tmp_path / "one.svg", tmp_path / "two.svg"
    assert cli.main(["export", str(LOGS[0]), "--chart", str(one)]) == 0
    assert cli.main(["export", *map(str, LOGS), "--chart", str(two)]) == 0
    assert len(svg_axes(one)) == len(svg_axes(two)) == 4
    text = two.read_text()
    for title in ("loss", "learning rate", "time per iteration (ms)", "MFU (% of 312 TFLOP/s)"):
        assert f"<!-- {title} -->" in text                      # both logs are against nanoGPT's A100 figure
    # each run is a legend entry of its own in the loss panel: train and val per run
    for log in LOGS:
        assert f"<!-- {log.name} train -->" in text and f"<!-- {log.name} val -->" in text
    lines = lambda p: p.read_text().count('id="line2d_')  # noqa: E731
    assert lines(two) > lines(one)


def test_pdf_too(tmp_path):
    out = tmp_path / "loss.pdf"
    assert cli.main(["export", str(LOGS[1]), "--chart", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_without_matplotlib_one_line_says_how_to_get_it(tmp_path):
    """matplotlib hidden from a child interpreter (a None entry in sys.modules refuses the import)."""
    code = ("import sys, importlib.util; sys.modules['matplotlib'] = None; "
            "real = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda n, *a: None if n == 'matplotlib' else real(n, *a); "
            "from gpttui import cli; sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "export", str(LOGS[0]), "-o", str(tmp_path / "r.csv"),
                           "--chart", str(tmp_path / "loss.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "pip install 'gpttui[plots]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []              # nothing half done: the rows were not written either
