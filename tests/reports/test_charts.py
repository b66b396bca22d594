"""The activity chart's geometry: round grid labels, bars that fit the plot and stack to the day's total."""

from datetime import date, timedelta

import pytest

from reports.charts import HEIGHT, jobs_chart, nice_step
from reports.selectors import DayActivity


@pytest.mark.parametrize(("maximum", "top"), [(0, 4), (3, 4), (9, 12), (22, 40), (50, 80), (130, 200), (1001, 1200)])
def test_the_grid_reaches_just_past_the_highest_bar_in_round_steps(maximum, top):
    assert nice_step(maximum) * 4 == top


def test_stacked_bars_add_up_to_the_days_jobs_and_stay_inside_the_plot():
    days = [DayActivity(day=date(2026, 11, 1) + timedelta(days=n), jobs_succeeded=n, jobs_failed=1) for n in range(30)]

    chart = jobs_chart(days)

    assert [line["label"] for line in chart.gridlines] == ["0", "10", "20", "30", "40"]
    last_day = [bar for bar in chart.bars if bar.title.startswith("2026-11-30")]
    assert sum(bar.height for bar in last_day) == pytest.approx(chart.plot_bottom - min(b.y for b in last_day))
    assert all(0 <= bar.y and bar.y + bar.height <= HEIGHT for bar in chart.bars)
    assert {bar.fill for bar in chart.bars} == {"#2e7d32", "#c62828"}
