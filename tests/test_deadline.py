"""The one deadline: durations, the countdown, and the deadline fitted to the CI job's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from flux_ci.deadline import (
    DIAGNOSTICS_S,
    MIN_WORK_S,
    REPORT_MARGIN_S,
    STOP_GRACE_S,
    Deadline,
    JobClock,
    fit,
    parse_duration,
)
from flux_ci.errors import DeadlineExceededError
from flux_ci.kube.diagnostics import GATHER_BUDGET_S
from flux_ci.tools.supervise import GRACE_S


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


# --- the deadline fitted to the CI job (a pure function: the clock is given) -----------------------

NOW = datetime(2026, 12, 7, 21, 0, 0, tzinfo=UTC)
RESERVE_S = DIAGNOSTICS_S + 2 * STOP_GRACE_S + REPORT_MARGIN_S


def _job(left_s: float, timeout_s: float = 3600) -> JobClock:
    """A job of `timeout_s` seconds with `left_s` of them left at NOW."""
    return JobClock(timeout_s, NOW - timedelta(seconds=timeout_s - left_s))


def test_the_reserve_is_what_follows_the_deadline_in_the_code_itself() -> None:
    assert DIAGNOSTICS_S == GATHER_BUDGET_S
    assert STOP_GRACE_S == GRACE_S
    assert RESERVE_S == 12


def test_outside_a_job_the_deadline_is_flux_ci_timeout() -> None:
    fitted = fit(600, job=None, now=NOW, rollback_s=120)
    assert (fitted.seconds, fitted.source, fitted.rollback_s) == (600, "timeout", 120)
    assert fitted.describe() == "timeout 600s"
    fitted.check_enough()


def test_a_job_with_time_to_spare_keeps_flux_ci_timeout() -> None:
    fitted = fit(300, job=_job(left_s=1800), now=NOW)
    assert (fitted.seconds, fitted.source) == (300, "timeout")
    assert fitted.describe() == "timeout 300s (the CI job ends in 1800s)"


def test_a_job_ending_first_ends_the_deadline_the_reserve_before_it() -> None:
    fitted = fit(600, job=_job(left_s=25), now=NOW)
    assert (fitted.seconds, fitted.source, fitted.reserve_s) == (25 - RESERVE_S, "job", RESERVE_S)
    assert "timeout 13s, fitted to the CI job (it ends in 25s; 12s kept" in fitted.describe()
    assert "not FLUX_CI_TIMEOUT's 600s" in fitted.describe()
    fitted.check_enough()  # 13 s is enough to push and wait


def test_the_job_is_measured_from_its_start_whatever_the_time_zone() -> None:
    started = datetime(2026, 12, 7, 22, 0, 0, tzinfo=timezone(timedelta(hours=1)))  # 21:00 UTC
    assert JobClock(60, started).left(NOW + timedelta(seconds=20)) == 40


def test_a_rollback_gets_its_own_share_of_the_job_capped_at_half() -> None:
    # 300 s left: 14 s reserve (12 + the rollback's own grace), 286 usable, half of it 143 > 120.
    fitted = fit(600, job=_job(left_s=300), now=NOW, rollback_s=120)
    assert (fitted.seconds, fitted.source, fitted.rollback_s) == (286 - 120, "job", 120)
    # 100 s left: 86 usable; FLUX_CI_ROLLBACK_TIMEOUT's 120 s is capped at half of it.
    fitted = fit(600, job=_job(left_s=100), now=NOW, rollback_s=120)
    assert (fitted.seconds, fitted.rollback_s, fitted.reserve_s) == (43, 43, 14 + 43)


def test_a_rollback_may_use_what_flux_ci_timeout_leaves_of_the_job() -> None:
    fitted = fit(30, job=_job(left_s=100), now=NOW, rollback_s=120)
    assert (fitted.seconds, fitted.source) == (30, "timeout")
    assert fitted.rollback_s == 100 - 14 - 30  # more than half, less than asked: what is there


def test_too_little_time_left_is_exit_8_naming_both_numbers() -> None:
    fitted = fit(600, job=_job(left_s=15), now=NOW)
    assert (fitted.seconds, fitted.source) == (3, "job")
    with pytest.raises(DeadlineExceededError) as raised:
        fitted.check_enough()
    message = raised.value.message
    assert raised.value.exit_code == 8
    assert "it ends in 15s" in message
    assert "CI_JOB_TIMEOUT=3600s from CI_JOB_STARTED_AT=2026-12-07T20:00:15Z" in message
    assert "after 12s kept for diagnostics, rollback and the report, 3s would be left" in message
    assert f"less than the {MIN_WORK_S:g}s a push and a wait need" in message
    assert "FLUX_CI_TIMEOUT is 600s" in message
    assert "Nothing was pushed" in message


def test_a_job_already_past_its_end_is_exit_8() -> None:
    fitted = fit(600, job=_job(left_s=-5), now=NOW)
    assert fitted.seconds == 0
    with pytest.raises(DeadlineExceededError, match="it ended 5s ago"):
        fitted.check_enough()


def test_a_short_flux_ci_timeout_of_ones_own_is_never_too_little() -> None:
    fit(5, job=_job(left_s=3000), now=NOW).check_enough()  # the user's choice, not the job's


def test_an_attempt_gets_half_of_the_time_left() -> None:
    deadline = Deadline(100)
    assert 49 < deadline.attempt() <= 50
    assert Deadline(10, started=0.0).attempt() == 0
