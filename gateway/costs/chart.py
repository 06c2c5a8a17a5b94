"""`--chart FILE`: the savings report as a grouped bar chart, drawn by matplotlib.

PNG or SVG by the file's suffix. The figure is built with matplotlib's object API and the
Agg canvas (no pyplot, no global figure state, no display needed). SVG text stays text
(`svg.fonttype: none`), escaped by matplotlib's XML writer; mathtext is off, so a `$` in a
campaign name is printed, not parsed.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.costs.savings import SavingsReport

FORMATS = {".png": "png", ".svg": "svg"}
COLOURS = ("#2f6fba", "#d9822b", "#3c9a5f", "#b03a48", "#7a5cb0", "#5d6d7e")


class ChartError(ValueError):
    """The chart cannot be written as asked."""


def _bars(report: SavingsReport) -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    """Months on the x axis; per campaign its net savings (or minus its cost) per month."""
    months = sorted({row["month"] for c in report["campaigns"] for row in c["months"]})
    series = []
    for campaign in report["campaigns"]:
        values = dict.fromkeys(months, Decimal(0))
        for row in campaign["months"]:
            values[row["month"]] = Decimal(row.get("net_savings", f"-{row['cost']}"))
        series.append((campaign["campaign"], [values[m] for m in months]))
    return months, series


def check_chart_path(path: Path) -> None:
    """Refuse a target the chart cannot be written to, before any work is done."""
    if path.suffix.lower() not in FORMATS:
        raise ChartError(f"{path}: name the file *.png or *.svg (the suffix picks the format)")
    if not path.parent.is_dir():
        raise ChartError(f"{path.parent}: no such directory")


def write_chart(path: Path, report: SavingsReport) -> None:
    """Write the savings chart to `path`, PNG or SVG by its suffix."""
    check_chart_path(path)
    # Imported here: matplotlib takes a noticeable moment to load, and only --chart needs it.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    months, series = _bars(report)
    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # <text> elements, not glyph outlines: searchable
            "svg.hashsalt": "switchboard",  # stable ids: the same report, the same file
            "text.parse_math": False,
            "text.usetex": False,
        }
    ):
        figure = Figure(figsize=(8, 4.2), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.set_title(
            f"Net savings per month ({report['currency']}), {report['from']} – {report['to']}"
        )
        axes.set_ylabel(report["currency"])
        axes.axhline(0, color="#444444", linewidth=0.8)
        width = 0.8 / max(len(series), 1)
        for index, (name, values) in enumerate(series):
            offsets = [m + (index - (len(series) - 1) / 2) * width for m in range(len(months))]
            # Floats only for placing the bars; the labels print the report's Decimals.
            bars = axes.bar(
                offsets,
                [float(v) for v in values],
                width,
                label=name,
                color=COLOURS[index % len(COLOURS)],
            )
            axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
        axes.set_xticks(range(len(months)), months)
        if series:
            axes.legend(loc="best", fontsize=9)
        else:
            axes.text(0.5, 0.5, "no campaigns in this range", ha="center", transform=axes.transAxes)
        figure.savefig(path, format=FORMATS[path.suffix.lower()], metadata={"Date": None})
