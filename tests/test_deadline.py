from __future__ import annotations

import pytest

from flux_ci.deadline import Deadline, parse_duration
from flux_ci.errors import DeadlineExceededError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("42", 42), ("1.5", 1.5), ("2m30s", 150)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "5m junk", "-"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_deadline_counts_down_from_its_start() -> None:
    deadline = Deadline(10, started=0.0)
    assert deadline.expired  # the monotonic clock is far past 10s after 0.0
    assert deadline.remaining == 0


def test_fresh_deadline_has_time_left_and_check_passes() -> None:
    deadline = Deadline(60)
    assert 59 < deadline.remaining <= 60
    deadline.check("pushing")


def test_check_raises_naming_the_work() -> None:
    with pytest.raises(DeadlineExceededError, match="while pushing"):
        Deadline(1, started=0.0).check("pushing")
