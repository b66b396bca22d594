"""Chart geometry for the activity report: plain numbers the SVG templates draw, no plotting library."""

from dataclasses import dataclass

from reports.selectors import DayActivity


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str

    @property
    def fill(self) -> str:
        return COLOURS[self.css]


@dataclass
class Chart:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    bars: list[Bar]
    gridlines: list[dict]  # {"y", "label"}
    labels: list[dict]  # {"x", "text"} along the x axis
    legend: list[dict]  # {"css", "text"}


WIDTH, HEIGHT = 680, 210
# SVG fills are attributes: WeasyPrint does not apply the page's CSS to inline SVG.
COLOURS = {"ok": "#2e7d32", "bad": "#c62828", "other": "#9aa5b1", "mail": "#2f6fed", "hook": "#f0a202"}
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 10, 24


def nice_step(value: int) -> int:
    """The smallest round grid step (1, 2, 2.5, 3 or 5 × 10^n, a whole number) such that four steps reach value."""
    needed = max(value, 4) / 4
    magnitude = 1
    while True:
        for factor in (1, 2, 2.5, 3, 5):
            step = factor * magnitude
            if step == int(step) and step >= needed:
                return int(step)
        magnitude *= 10


def _frame(maximum: int, days: list[DayActivity]) -> tuple[int, float, float, list[dict], list[dict]]:
    step = nice_step(maximum)
    top = step * 4
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    gridlines = [{"y": HEIGHT - BOTTOM - plot_height * i / 4, "label": str(step * i)} for i in range(5)]
    every = max(1, len(days) // 10)
    labels = [
        {"x": LEFT + slot * (i + 0.5), "text": day.day.strftime("%d %b")}
        for i, day in enumerate(days)
        if i % every == 0 or i == len(days) - 1
    ]
    return top, plot_height, slot, gridlines, labels


def jobs_chart(days: list[DayActivity]) -> Chart:
    """Stacked bars per day: succeeded, failed, other."""
    top, plot_height, slot, gridlines, labels = _frame(max((d.jobs_total for d in days), default=0), days)
    bars = []
    for i, day in enumerate(days):
        base = HEIGHT - BOTTOM
        for css, count, name in (
            ("ok", day.jobs_succeeded, "succeeded"),
            ("bad", day.jobs_failed, "failed"),
            ("other", day.jobs_other, "other"),
        ):
            if not count:
                continue
            height = plot_height * count / top
            base -= height
            bars.append(Bar(LEFT + slot * i + slot * 0.15, base, slot * 0.7, height, css, f"{day.day}: {count} {name}"))
    legend = [{"css": "ok", "text": "succeeded"}, {"css": "bad", "text": "failed"}, {"css": "other", "text": "other"}]
    return Chart(WIDTH, HEIGHT, LEFT, HEIGHT - BOTTOM, bars, gridlines, labels, legend)


def messages_chart(days: list[DayActivity]) -> Chart:
    """Side-by-side bars per day: emails sent, webhooks processed."""
    maximum = max((max(d.emails_sent, d.webhooks) for d in days), default=0)
    top, plot_height, slot, gridlines, labels = _frame(maximum, days)
    bars = []
    for i, day in enumerate(days):
        for offset, css, count, name in ((0.1, "mail", day.emails_sent, "emails sent"),
                                         (0.5, "hook", day.webhooks, "webhooks processed")):  # fmt: skip
            if not count:
                continue
            height = plot_height * count / top
            bars.append(
                Bar(
                    LEFT + slot * (i + offset),
                    HEIGHT - BOTTOM - height,
                    slot * 0.4,
                    height,
                    css,
                    f"{day.day}: {count} {name}",
                )  # fmt: skip
            )
    legend = [{"css": "mail", "text": "emails sent"}, {"css": "hook", "text": "webhooks processed"}]
    return Chart(WIDTH, HEIGHT, LEFT, HEIGHT - BOTTOM, bars, gridlines, labels, legend)
