"""Print line coverage per product package from the .coverage file `make test` leaves."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import coverage

PACKAGES = ("gateway", "channels", "crm_sync", "adapters")


def main() -> int:
    """One line per package and a total; no threshold, the figure is there to be read."""
    root = Path.cwd().resolve()
    cov = coverage.Coverage()  # reads [tool.coverage] from pyproject.toml
    cov.load()
    statements: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for package in PACKAGES:
        # Files no test imported count as wholly missed, as in coverage's own report.
        for path in sorted((root / package).rglob("*.py")):
            _, lines, _, missing, _ = cov.analysis2(str(path))
            statements[package] += len(lines)
            missed[package] += len(missing)
    print(f"\n{'coverage (lines)':<18} {'statements':>10} {'missed':>8} {'covered':>8}")
    for package in PACKAGES:
        row(package, statements[package], missed[package])
    row("total", statements.total(), missed.total())
    return 0


def row(name: str, statements: int, missed: int) -> None:
    """One line of the table."""
    share = f"{100 * (statements - missed) / statements:.1f}%" if statements else "n/a"
    print(f"{name:<18} {statements:>10} {missed:>8} {share:>8}")


if __name__ == "__main__":
    sys.exit(main())
