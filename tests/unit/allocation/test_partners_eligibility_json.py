"""The `eligibility` cell of a partners or agents CSV: deep JSON is a row error, not a crash."""

from __future__ import annotations

import pytest

from gateway.allocation.partners_csv import RowError, shared_terms
from gateway.core.http.json_body import MAX_JSON_DEPTH


def test_deeply_nested_eligibility_is_a_row_error_naming_the_limit() -> None:
    row = {"eligibility": "[" * 5_000 + "]" * 5_000, "cost_per_contact": "1"}
    with pytest.raises(RowError, match=f"eligibility: .*deeper than {MAX_JSON_DEPTH} levels"):
        shared_terms(row, [], [], cost_required=True)


def test_eligibility_that_is_not_json_is_still_named() -> None:
    with pytest.raises(RowError, match="eligibility: not JSON"):
        shared_terms({"eligibility": "{", "cost_per_contact": "1"}, [], [], cost_required=True)
