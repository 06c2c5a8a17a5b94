"""`--chart FILE`: the savings report as an SVG bar chart, written by hand.

matplotlib is not among the gateway's dependencies and one bar chart does not justify
pulling it (and its compiled wheels) into every install; SVG is plain text, opens in
any browser and embeds in the console as it is.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT, MARGIN = 760, 360, 60
COLOURS = ("#2f6fba", "#d9822b", "#3c9a5f", "#b03a48", "#7a5cb0", "#5d6d7e")


class ChartError(ValueError):
    """The chart cannot be written as asked."""


def _bars(report: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    """Months on the x axis; per campaign its net savings (or minus its cost) per month."""
    months = sorted({row["month"] for c in report["campaigns"] for row in c["months"]})
    series = []
    for campaign in report["campaigns"]:
        values = dict.fromkeys(months, Decimal(0))
        for row in campaign["months"]:
            values[row["month"]] = Decimal(row.get("net_savings", f"-{row['cost']}"))
        series.append((campaign["campaign"], [values[m] for m in months]))
    return months, series


def savings_svg(report: dict[str, Any]) -> str:
    """Net savings per campaign and month, as an SVG document."""
    months, series = _bars(report)
    values = [v for _, vs in series for v in vs] or [Decimal(0)]
    top, bottom = max(max(values), Decimal(0)), min(min(values), Decimal(0))
    span = (top - bottom) or Decimal(1)
    plot_h = HEIGHT - 2 * MARGIN
    zero_y = MARGIN + float(top / span) * plot_h
    group_w = (WIDTH - 2 * MARGIN) / max(len(months), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    title = f"Net savings per month ({report['currency']}), {report['from']} – {report['to']}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<text x="{MARGIN}" y="24" font-size="14">{escape(title)}</text>',
        f'<line x1="{MARGIN}" y1="{zero_y:.1f}" x2="{WIDTH - MARGIN}" y2="{zero_y:.1f}" '
        'stroke="#444"/>',
        f'<text x="{MARGIN - 6}" y="{MARGIN + 4}" text-anchor="end">{top:.2f}</text>',
        f'<text x="{MARGIN - 6}" y="{HEIGHT - MARGIN + 4}" text-anchor="end">{bottom:.2f}</text>',
    ]
    for i, month in enumerate(months):
        x = MARGIN + i * group_w
        parts.append(
            f'<text x="{x + group_w / 2:.1f}" y="{HEIGHT - MARGIN + 18}" '
            f'text-anchor="middle">{escape(month)}</text>'
        )
        for j, (name, vs) in enumerate(series):
            height = float(abs(vs[i]) / span) * plot_h
            y = zero_y - height if vs[i] >= 0 else zero_y
            parts.append(
                f'<rect x="{x + group_w * 0.1 + j * bar_w:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{height:.1f}" fill="{COLOURS[j % len(COLOURS)]}">'
                f"<title>{escape(name)} {escape(month)}: {vs[i]:.2f}</title></rect>"
            )
    for j, (name, _) in enumerate(series):
        y = HEIGHT - 20
        x = MARGIN + j * 150
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" '
            f'fill="{COLOURS[j % len(COLOURS)]}"/><text x="{x + 14}" y="{y}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def check_chart_path(path: Path) -> None:
    """Refuse a target the chart cannot be written to, before any work is done."""
    if path.suffix.lower() != ".svg":
        raise ChartError(f"{path}: charts are written as SVG; name the file *.svg")
    if not path.parent.is_dir():
        raise ChartError(f"{path.parent}: no such directory")


def write_chart(path: Path, report: dict[str, Any]) -> None:
    """Write the savings chart to `path` (SVG)."""
    check_chart_path(path)
    path.write_text(savings_svg(report), encoding="utf-8")
