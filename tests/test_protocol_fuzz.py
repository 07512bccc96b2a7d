"""Property tests: any JSON value, as any field of any event type, is either refused with a
ProtocolError or comes out holding what its field must, and the events that come out never
crash what reads them: RunHistory, LiveRun, the doctor and the export."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpttui.analysis import doctor, export
from gpttui.analysis.live import LiveRun
from gpttui.run import protocol as P
from gpttui.run.history import RunHistory

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["cpu", "running", "float32", "", "\x1b[2J", "\udcff", "x" * 300]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                          max_size=4), max_leaves=12)
FIELDS = sorted({name for fields in P.SCHEMA.values() for name in fields} | {"iter", "t", "extra"})
CONFIG_KEYS = ["n_layer", "max_iters", "learning_rate", "device", "batch_size", "lr_decay_iters", "nope"]


@st.composite
def events(draw) -> dict:
    """An event of a known type: mostly good values (so consumers see records), some hostile."""
    kind = draw(st.sampled_from(sorted(P.SCHEMA)))
    ev = {"type": kind, "iter": draw(st.integers(0, 50) | JSON), "t": draw(st.floats(1e9, 2e9) | JSON)}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6)):
        if name in ("config", "changes", "values"):
            ev[name] = draw(st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON, max_size=4) | JSON)
        else:
            ev[name] = draw(st.floats(0, 10) | st.integers(0, 100) | JSON)
    return ev


def holds(out: dict) -> None:
    """What every consumer may rely on in an event that came out of check_event."""
    assert type(out["iter"]) is int and 0 <= out["iter"] < P.MAX_ITER
    for name, value in out.items():
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, int) and not isinstance(value, bool):
            assert abs(value) < P.MAX_COUNT
        if isinstance(value, str):
            assert not any(0xD800 <= ord(c) <= 0xDFFF or ord(c) < 0x20 and c not in "\t\n" for c in value)
            value.encode("utf-8")
    assert P.check_event(out) == (out, {})               # what came out passes again, unchanged
    assert P.parse_event(P.encode(out))[0] == out         # and survives a round trip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=25))
def test_any_fields_are_refused_or_hold_and_never_crash_a_reader(evs):
    good = []
    for ev in evs:
        try:
            out, dropped = P.check_event(json.loads(json.dumps(ev)))
        except P.ProtocolError:
            continue
        holds(out)
        good.append(out)
    history = RunHistory.from_events(iter(good), source="fuzz")
    live = LiveRun()
    live.add_all(good)
    doctor.render(doctor.diagnose(history))
    doctor.render(doctor.diagnose(live.history))
    export.rows(history)
    export.table(history)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_line_is_an_event_or_a_protocol_error(value):
    try:
        out, _ = P.parse_event(json.dumps(value))
    except P.ProtocolError:
        return
    holds(out)
