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


def test_a_bad_descriptive_field_is_dropped_and_the_rest_kept():
    ev, dropped = P.check_event({"type": "hello", "iter": 0, "t": 1.0, "device": 1, "device_name": "x" * 10**6,
                                 "config": {"n_layer": 2, "n_head": "two", "max_iters": 10**30},
                                 "start_iter": 0, "peak_flops": float("nan")})
    assert list(dropped) == ["device", "device_name", "config", "peak_flops"]   # a run's config is kept whole or not at all
    assert dropped["device"] == "expected a string of at most 256 characters, got 1"
    assert dropped["config"].startswith("expected a config gpttui train would take, not ")
    assert ev == {"type": "hello", "iter": 0, "t": 1.0, "start_iter": 0}
    ev, dropped = P.check_event({"type": "config", "iter": 5, "t": 1.0,
                                 "changes": {"eval_interval": 2, "n_head": "two", "max_iters": 10**30}})
    assert ev["changes"] == {"eval_interval": 2} and not dropped   # a live change: its sound entries kept
    ev, dropped = P.check_event({"type": "step", "iter": 3, "loss": 2.5, "lr": "fast", "tokens": -1, "x": {}})
    assert ev == {"type": "step", "iter": 3, "loss": 2.5} and list(dropped) == ["lr", "tokens", "x"]


@pytest.mark.parametrize("obj,msg", [
    ({"type": "step", "iter": 99999999999999999999999, "loss": 1.0}, r"iter: expected an iteration in \[0, 10\*\*8\)"),
    ({"type": "step", "iter": -1, "loss": 1.0}, "iter"),
    ({"type": "step", "iter": True, "loss": 1.0}, "iter"),
    ({"type": "step", "loss": 1.0}, "iter: missing"),
    ({"type": "step", "iter": 1, "loss": "low"}, "step event: loss: expected a finite number"),
    ({"type": "step", "iter": 1, "t": float("inf"), "loss": 1.0}, "t: expected a wall time"),
    ({"type": "eval", "iter": 1, "train_loss": 1.0, "val_loss": [1]}, "val_loss"),
    ({"type": "state", "iter": 1, "state": "x" * 1000}, "state: expected a string of at most 256"),
    ({"type": {"a": 1}, "iter": 1}, "type: expected an event type"),
    ([1, 2], "a JSON list, not an object"),
])
def test_a_bad_envelope_or_key_field_refuses_the_line_naming_the_field(obj, msg):
    with pytest.raises(P.ProtocolError, match=msg):
        P.check_event(obj)


def test_strings_read_from_outside_cannot_drive_the_terminal():
    ev, _ = P.check_event({"type": "error", "iter": 0, "message": "a\x1b]0;title\x07\nb\tc\udcff",
                           "traceback": "y" * (P.MAX_TEXT + 10)})
    assert ev["message"] == "a\ufffd]0;title\ufffd\nb\tc\ufffd"
    assert len(ev["traceback"]) == P.MAX_TEXT + 1


def test_lines_past_the_limit_are_refused_without_being_held(tmp_path):
    path = tmp_path / "m.jsonl"
    good = P.encode(P.event("state", 0, state="running")).encode()
    path.write_bytes(good + b"x" * 5000 + b"\n" + good)
    with open(path, "rb") as f:
        lines = list(P.bounded_lines(f, limit=1000))
    assert [len(line) for line in lines] == [len(good), 1001, len(good)]
    with pytest.raises(P.ProtocolError, match="longer than"):
        P.parse_event(b"{" + b" " * P.MAX_LINE + b"}")
    with pytest.raises(P.ProtocolError, match="not JSON"):
        P.parse_event(b"[" * 100_000)


@pytest.mark.parametrize("line", ['{"cmd": {}}', '{"cmd": ["pause"]}', '{"cmd": null}',
                                  '{"cmd": "set", "key": [1], "value": 2}', "[" * 100_000])
def test_commands_of_the_wrong_shape_are_refused_not_raised(line):
    with pytest.raises(P.ProtocolError):
        P.decode_command(line)
