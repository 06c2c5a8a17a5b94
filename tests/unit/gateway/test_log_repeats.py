"""RepeatFilter: a burst of one kind of log line becomes a few lines and a count."""

from __future__ import annotations

import io
import logging

from gateway.core.log_repeats import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with_filter(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(burst=3, window=10.0, clock=clock))
    logger = logging.getLogger(f"test.repeats.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_repeats_are_dropped_and_counted_on_the_next_line_after_the_window() -> None:
    clock = Clock()
    log, out = logger_with_filter(clock)

    def failed(index: int) -> None:
        log.error("could not insert a call row %s", index)  # one call site: one kind

    for index in range(1000):
        failed(index)
        log.warning("another kind")
    lines = out.getvalue().splitlines()
    assert lines.count("another kind") == 3
    assert [line for line in lines if line.startswith("could not")] == [
        "could not insert a call row 0",
        "could not insert a call row 1",
        "could not insert a call row 2",
    ]
    clock.now = 10.0
    failed(1000)
    assert out.getvalue().splitlines()[-1] == (
        "could not insert a call row 1000 [997 more like this in the last 10 s]"
    )


def test_messages_that_differ_after_their_first_line_are_one_kind() -> None:
    clock = Clock()
    log, out = logger_with_filter(clock)
    for index in range(10):
        log.error("Task exception was never retrieved\nfuture: <Task-%d>" % index)  # noqa: UP031
    assert out.getvalue().count("never retrieved") == 3
