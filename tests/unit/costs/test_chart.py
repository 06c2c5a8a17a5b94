"""The savings chart (`report savings --chart FILE`): PNG or SVG by suffix, drawn by
matplotlib; campaign names are text, never markup; bad targets are refused unwritten."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from gateway.costs.chart import ChartError, check_chart_path, write_chart

HOSTILE = '<script>alert("x")</script> & $\\frac{1}{0}$'
# Built as the report endpoint returns it; typed loosely so tests can vary any part.
REPORT: Any = {
    "currency": "UAH",
    "from": "2026-10-01",
    "to": "2026-11-30",
    "campaigns": [
        {
            "campaign": "reminder",
            "months": [
                {"month": "2026-10", "cost": "12.50"},
                {"month": "2026-11", "cost": "3000.00", "net_savings": "15750.00"},
            ],
        },
        {"campaign": HOSTILE, "months": [{"month": "2026-11", "cost": "20.00"}]},
    ],
}


def svg_root(path: Path) -> ElementTree.Element:
    return ElementTree.parse(path).getroot()  # noqa: S314 - the file this test just wrote


def svg_texts(path: Path) -> list[str]:
    return [node.text or "" for node in svg_root(path).iter() if node.tag.endswith("}text")]


def test_png_has_the_signature_and_the_figure_size(tmp_path: Path) -> None:
    path = tmp_path / "savings.png"
    write_chart(path, REPORT)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    # 8 x 4.2 inches at 100 dpi.
    assert struct.unpack(">II", data[16:24]) == (800, 420)


def test_svg_carries_names_and_figures_as_escaped_text(tmp_path: Path) -> None:
    path = tmp_path / "Savings.SVG"
    write_chart(path, REPORT)
    texts = svg_texts(path)
    assert "reminder" in texts and HOSTILE in texts
    # The months on the axis, the Decimals printed as the report has them (or minus the cost).
    assert {"2026-10", "2026-11", "15750.00", "-12.50", "-20.00"} <= set(texts)
    assert "Net savings per month (UAH), 2026-10-01 – 2026-11-30" in texts
    assert not [
        node for node in svg_root(path).iter() if node.tag.rsplit("}", 1)[-1].lower() == "script"
    ]
    assert "&lt;script&gt;" in path.read_text(encoding="utf-8")


def test_an_empty_report_still_draws_a_chart(tmp_path: Path) -> None:
    path = tmp_path / "empty.svg"
    empty: Any = {**REPORT, "campaigns": []}
    write_chart(path, empty)
    assert "no campaigns in this range" in svg_texts(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("chart.gif", "name the file *.png or *.svg"),
        ("chart", "name the file *.png or *.svg"),
        ("missing/chart.png", "no such directory"),
    ],
)
def test_refused_targets_are_not_written(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    with pytest.raises(ChartError, match=message.replace("*", r"\*")):
        check_chart_path(path)
    with pytest.raises(ChartError):
        write_chart(path, REPORT)
    assert not path.exists() and list(tmp_path.iterdir()) == []
