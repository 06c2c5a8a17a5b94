"""The classic savings example, pinned to the cent, from the library and the CLI."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway.cli import main
from gateway.costs.estimate import EstimateError, estimate

EXAMPLE = [
    "--customers",
    "10000",
    "--deflection",
    "0.5",
    "--call-minutes",
    "2.5",
    "--minute-cost",
    "1.50",
    "--contact-cost",
    "0.30",
]


def test_the_brochure_example_holds_exactly() -> None:
    result = estimate(10_000, Decimal("0.5"), Decimal("2.5"), Decimal("1.50"), Decimal("0.30"))
    assert result.as_dict() == {
        "per_customer": "3.45",
        "per_month": "17250.00",
        "per_month_net": "15750.00",
        "per_year": "207000.00",
        "per_year_net": "189000.00",
    }


def test_cli_json_gives_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "estimate", *EXAMPLE, "--format", "json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["per_customer"] == "3.45" and figures["per_year_net"] == "189000.00"


def test_cli_table_labels_both_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "estimate", *EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "17250.00" in out and "15750.00" in out and "assumed" in out


@pytest.mark.parametrize(
    "bad", [["--deflection", "1.5"], ["--customers", "-1"], ["--contact-cost", "-0.1"]]
)
def test_out_of_range_inputs_are_refused(bad: list[str]) -> None:
    args = dict(zip(EXAMPLE[::2], EXAMPLE[1::2], strict=True))
    args.update(dict(zip(bad[::2], bad[1::2], strict=True)))
    flat = [item for pair in args.items() for item in pair]
    assert main(["report", "estimate", *flat]) == 2
    with pytest.raises(EstimateError):
        estimate(10, Decimal("2"), Decimal(1), Decimal(1), Decimal(1))


def test_a_non_number_is_an_argument_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "estimate", *EXAMPLE[:-1], "abc"])
    assert exit_info.value.code == 2
