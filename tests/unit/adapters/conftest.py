"""Fixtures for the adapter unit tests: the recorded AMI traces."""

from __future__ import annotations

from pathlib import Path

import pytest

TRACE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "ami"
TRACE_FILES = sorted(TRACE_DIR.glob("*.txt"))


@pytest.fixture(params=TRACE_FILES, ids=lambda p: p.stem)
def trace(request: pytest.FixtureRequest) -> bytes:
    """Each recorded trace, byte for byte."""
    path: Path = request.param
    return path.read_bytes()
