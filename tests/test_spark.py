"""Sparklines say their range and keep proportions: a 0.1% change is no cliff, a halving is half."""

from __future__ import annotations

from app_helpers import pilot_test, screen_text, text_of, wait_for
from textual.app import App, ComposeResult

from gpttui.widgets import fmt
from gpttui.widgets.spark import Scale, SparkPanel, columns, scale_for


class Sparks(App[None]):
    CSS = "SparkPanel { height: 4; width: 30; }"

    def compose(self) -> ComposeResult:
        yield SparkPanel("lr", fmt.number, id="lr")
        yield SparkPanel("loss", fmt.loss, id="loss")


def bar_rows(app: App, selector: str) -> list[str]:
    return [row.ljust(30) for row in screen_text(app, selector).splitlines()[1:]]   # under the caption


@pilot_test
async def test_an_lr_drifting_by_a_thousandth_is_drawn_flat_and_its_range_is_stated():
    app = Sparks()
    async with app.run_test(size=(40, 10)) as pilot:
        lr = app.query_one("#lr", SparkPanel)
        lr.show([1e-3] * 30 + [9.99e-4] * 30, version=1)
        await wait_for(pilot, lambda: "–" in text_of(lr.query_one(".caption")), 5, "the lr range")
        caption = text_of(lr.query_one(".caption"))
        assert caption.startswith("lr 9.99e-4") and caption.endswith("9.99e-4–1.00e-3")
        rows = bar_rows(app, "#lr")
        assert len(rows) == 3 and all(len(set(row)) == 1 for row in rows)   # every column the same height
        assert rows[0] == "█" * 30                                         # full height: no step down


@pilot_test
async def test_a_loss_halving_reads_as_a_halving_and_a_new_value_is_drawn_within_a_second():
    app = Sparks()
    async with app.run_test(size=(40, 10)) as pilot:
        loss = app.query_one("#loss", SparkPanel)
        loss.show([4.0] * 30 + [2.0] * 30, version=1)
        await wait_for(pilot, lambda: "2.0000–4.0000" in text_of(loss.query_one(".caption")), 5)
        rows = bar_rows(app, "#loss")
        left, right = [sum(" ▁▂▃▄▅▆▇█".index(r[c]) for r in rows) for c in (0, 29)]
        assert (left, right) == (24, 12)   # 3 rows of 8 eighths: full, then half
        loss.show([4.0] * 30 + [2.0] * 29 + [1.0], version=2)
        await wait_for(pilot, lambda: "loss 1.0000" in text_of(loss.query_one(".caption")), 3)


def test_scale_rises_from_zero_and_buckets_are_means():
    assert scale_for([1e-3, 9.99e-4]) == Scale(0.0, 1e-3) and scale_for([-1.0, 2.0]) == Scale(-1.0, 2.0)
    assert Scale(0.0, 1e-3).level(9.99e-4, 24) == 24 and Scale(0.0, 4.0).level(1e-9, 24) == 1
    assert columns([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 7.0] and columns([1.0], 5) == [1.0]


@pilot_test
async def test_the_range_stated_holds_the_latest_value():
    """An lr decaying over 3000 steps in 30 columns: the last bucket's mean is above the latest lr,
    and the caption said 'lr 9.53e-4   9.54e-4–9.96e-4'."""
    app = Sparks()
    async with app.run_test(size=(40, 10)) as pilot:
        lr = app.query_one("#lr", SparkPanel)
        values = [1e-3 - 1.6e-8 * i for i in range(3000)]
        lr.show(values, version=1)
        await wait_for(pilot, lambda: "–" in text_of(lr.query_one(".caption")), 5, "the range")
        caption = text_of(lr.query_one(".caption"))
        latest = fmt.number(values[-1])
        assert caption.startswith(f"lr {latest}") and caption.endswith(f"{latest}–{fmt.number(max(columns(values, 30)))}")


@pilot_test
async def test_one_steps_spike_is_not_the_range_stated_the_bars_drawn_are():
    """The demo's MFU caption said '1.7%–81.7%' from single steps the bars (bucket means) never drew."""
    app = Sparks()
    async with app.run_test(size=(40, 10)) as pilot:
        loss = app.query_one("#loss", SparkPanel)
        values = [2.0] * 300
        values[150] = 9.0              # one step's spike, in a bucket of 10
        values[0] = 0.5                # and one slow first step
        loss.show(values, version=1)
        await wait_for(pilot, lambda: "–" in text_of(loss.query_one(".caption")), 5, "the range")
        caption = text_of(loss.query_one(".caption"))
        shown = columns(values, 30)
        assert caption.endswith(f"{fmt.loss(min(shown))}–{fmt.loss(max(shown))}")
        assert "9.0000" not in caption and "0.5000" not in caption
