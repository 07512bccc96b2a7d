import json

import pytest

from gpttui.run import protocol as P


def test_event_carries_type_iter_time_and_required_fields():
    ev = P.event("step", 7, loss=2.5, lr=1e-3, dt_ms=40.0, tokens_per_s=19000.0, mfu=0.4, grad_norm=0.9)
    assert ev["type"] == "step" and ev["iter"] == 7 and ev["t"] > 0
    assert P.decode_event(P.encode(ev)) == ev
    with pytest.raises(P.ProtocolError, match="eval event lacks val_loss"):
        P.event("eval", 1, train_loss=1.0)


def test_non_finite_numbers_travel_as_null():
    line = P.encode(P.event("eval", 3, train_loss=float("nan"), val_loss=float("inf")))
    assert json.loads(line)["train_loss"] is None


@pytest.mark.parametrize("line,values", [
    ('{"cmd":"set","values":{"max_iters":4000}}', {"max_iters": 4000}),
    ('{"cmd":"set","key":"max_iters","value":4000}', {"max_iters": 4000}),
    ('{"cmd":"set","max_iters":4000}', {"max_iters": 4000}),
])
def test_set_command_forms(line, values):
    assert P.decode_command(line) == P.Command("set", values)


@pytest.mark.parametrize("line,msg", [
    ("garbage", "not JSON"),
    ('["pause"]', 'with "cmd"'),
    ('{"cmd":"explode"}', "unknown command 'explode'"),
    ('{"cmd":"set"}', "set needs values"),
])
def test_bad_commands_are_refused_with_a_reason(line, msg):
    with pytest.raises(P.ProtocolError, match=msg):
        P.decode_command(line)


def test_command_round_trip():
    assert P.decode_command(P.command("pause")) == P.Command("pause", {})
    assert P.decode_command(P.command("set", max_iters=10)).values == {"max_iters": 10}
