"""The one format for counts, sizes and durations, shared by the CLI and the dashboard."""

import math

from gpttui.run.units import human_bytes, human_count, human_duration
from gpttui.widgets import fmt


def test_durations_have_one_format_everywhere():
    cases = {0: "0s", 47: "47s", 59.6: "1m 00s", 754: "12m 34s", 47000: "13h 03m", 200000: "2d 07h", -3: "0s",
             4e8: "12y 246d"}
    assert {s: human_duration(s) for s in cases} == cases
    assert {s: fmt.duration(s) for s in cases} == cases          # the dashboard's, the same
    assert fmt.duration(None) == fmt.duration(math.inf) == "—"   # not known yet


def test_counts_and_bytes():
    assert human_count(123587328) == "123.59M" and human_count(3.1e9) == "3.10B" and human_count(950) == "950"
    assert human_count(125e6, 0) == "125M"
    assert fmt.count(3.1e9) == "3.1B" and fmt.count(950) == "950" and fmt.count(None) == "—"
    assert human_bytes(3 * 2**30) == "3.0 GiB" and human_bytes(512) == "512 B"
