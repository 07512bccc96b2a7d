"""The configs the README's commands name (config/*.py) ship with the clone and resolve as the
README says: a new user's `gpttui config config/train_fineweb.py --n_embd=384` works as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from engine_kit import gpttui

ROOT = Path(__file__).resolve().parents[1]
NAMED = sorted(set(re.findall(r"config/\w+\.py", (ROOT / "README.md").read_text(encoding="utf-8"))))


def test_the_readme_names_configs_and_each_one_ships():
    assert NAMED, "the README names no config/*.py"
    assert [n for n in NAMED if not (ROOT / n).is_file()] == []


@pytest.mark.parametrize("name", NAMED)
def test_each_config_resolves_with_a_flag_on_top(name):
    out = gpttui("config", name, "--batch_size=4", "--json", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)["config"]
    assert cfg["batch_size"] == 4
    assert cfg["out_dir"].startswith("out-")


def test_the_fineweb_config_fits_a_12_gb_card():
    out = gpttui("config", "config/train_fineweb.py", "--json", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["config"]["dataset"] == "fineweb" and got["config"]["init_from"] == "scratch"
    assert got["errors"] == [] and got["derived"]["memory_bytes"]["total"] < 12 * 2**30
