"""A run memorising its data, judged half-way: the forecast has val rising past its best, the doctor
warns, and says whether the run's best checkpoint survives the evals to come."""

from __future__ import annotations

from pathlib import Path

from gpttui import cli
from gpttui.analysis import doctor
from gpttui.run.history import load_run

RUN = Path(__file__).parent / "fixtures" / "memorising"


def forecast_finding(r: doctor.Report) -> doctor.Finding:
    return next(f for f in r.findings if f.key == "forecast")


def test_half_way_the_doctor_says_val_will_rise_and_the_best_checkpoint_is_kept():
    h = load_run(RUN).until(360)
    f = forecast_finding(doctor.diagnose(h))
    assert f.level == "warn"
    assert f.verdict.startswith("val forecast to rise: ")
    assert "above its best 2.478 (iter 120)" in f.verdict
    assert f.verdict.endswith("the best checkpoint is kept")   # it saves only on a better val


def test_with_every_eval_saved_over_one_checkpoint_it_says_how_to_keep_the_best():
    h = load_run(RUN).until(360)
    h.config["always_save_checkpoint"] = True
    f = forecast_finding(doctor.diagnose(h))
    assert f.level == "warn"
    assert "each eval overwrites ckpt.pt: to keep the best, set always_save_checkpoint = False" in f.verdict
    assert f.verdict.endswith("or keep_checkpoints >= 2")
    h.config["keep_checkpoints"] = 3
    assert forecast_finding(doctor.diagnose(h)).verdict.endswith("the best checkpoint is kept")


def test_a_run_whose_val_keeps_falling_gets_no_such_warning():
    h = load_run(Path(__file__).parent / "fixtures" / "decay_past_end").until(1500)   # a demo run, not memorising
    f = forecast_finding(doctor.diagnose(h))
    assert f.level == "ok"
    assert f.verdict.startswith("-0.197 more from here to iter 3,000") and f.verdict.endswith("(best so far 1.783)")


def test_the_cli_prints_the_warning(capsys):
    assert cli.main(["doctor", str(RUN), "--until", "360"]) == 0
    out = capsys.readouterr().out
    assert "[WARN] val forecast to rise: " in out


def test_a_val_that_clearly_rises_is_called_rising_not_a_plateau():
    r = doctor.diagnose(load_run(RUN))   # the whole run: val up from 2.92 to 3.64 over its last 7 evals
    trend = next(f for f in r.findings if f.key == "trend")
    assert trend.level == "warn" and trend.verdict == "rising: val goes up over the recent evals, past its best"
    flat = doctor.diagnose(load_run(RUN).until(270))   # up 0.2% over three evals: within their scatter
    assert next(f for f in flat.findings if f.key == "trend").verdict.startswith("plateau: ")


def test_no_forecast_at_twice_max_iters_where_the_gap_of_the_iterations_reaches_too_far():
    """A memorising run's gap grows with the iterations, at min_lr too, where the lr area hardly
    grows: the band's reach counts the iterations, and at 2x max_iters it is too wide to give."""
    for path, cut in ((RUN, 360), (RUN.parent / "nanogpt" / "train_log_sc_tiny_mem_cos1200.txt", 900)):
        h = load_run(path).until(cut)
        r = doctor.diagnose(h)
        assert [f.iter for f in r.forecasts] == [h.max_iters], path.name
        assert not any("2x max_iters" in line for line in forecast_finding(r).lines), path.name


def test_the_json_trend_says_rising_and_not_plateau():
    trend = doctor.diagnose(load_run(RUN)).trend
    assert trend["rising"] is True and trend["plateau"] is False
