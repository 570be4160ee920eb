"""One deadline for a whole command: every wait and every child process timeout is cut from it.

In a GitLab job the deadline is fitted to the job (`fit`): GitLab kills the job `CI_JOB_TIMEOUT`
seconds after `CI_JOB_STARTED_AT`, and a job killed mid-wait leaves no report, no dotenv, no
diagnostics and no rollback. So the deadline is the earlier of FLUX_CI_TIMEOUT and the job's end
minus a reserve for what follows the deadline. The reserve, in seconds:

- `DIAGNOSTICS_S`, reading why the consumers failed or were still awaited (kube/diagnostics.py
  `GATHER_BUDGET_S`, which a test keeps equal);
- twice `STOP_GRACE_S`, the SIGTERM-to-SIGKILL grace of a stopped child (tools/supervise.py): a
  watch stopped at the deadline and a read cut by the diagnostics' budget may each take it whole;
- `REPORT_MARGIN_S`, writing the report and dotenv and exiting, plus the difference between the
  clock that stamped `CI_JOB_STARTED_AT` (GitLab's) and the job host's;
- with FLUX_CI_ROLLBACK, the rollback's own deadline (FLUX_CI_ROLLBACK_TIMEOUT, but at most
  `ROLLBACK_SHARE` of the job's usable time, so the deploy it undoes still gets the other half) and
  one more grace for the children it stops.

12 s without a rollback: nothing a long job notices, and enough for a short one to end with its
report. A job whose end leaves less than `MIN_WORK_S` to push and wait is exit 8 before anything is
pushed (a push that could never be verified would only move the tags).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from flux_ci.errors import DeadlineExceededError

DEFAULT_TIMEOUT_S = 300.0  # FLUX_CI_TIMEOUT's default
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # and its largest: more is a typo (config/values.py refuses it)

DIAGNOSTICS_S = 5.0
STOP_GRACE_S = 2.0
REPORT_MARGIN_S = 3.0
ROLLBACK_SHARE = 0.5
# The least time worth pushing for: a push and one reconciliation take a few seconds against a
# nearby registry and API server (1-2 s in the sandbox); below that, pushing would only move the tags.
MIN_WORK_S = 5.0
# A child inside a retry loop (a registry call, a cluster read) may take at most this share of the
# time left: one that hangs (a server that accepts the connection and never answers) then leaves at
# least as much again for another attempt and for the steps after it.
ATTEMPT_SHARE = 0.5

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

Source = Literal["timeout", "job"]


def parse_duration(text: str) -> float:
    """Parse a Go-style duration (`90s`, `5m`, `1h30m`, `500ms`) or plain seconds into seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        msg = f"{text!r} is not a duration such as 90s, 5m or 1h30m"
        raise ValueError(msg)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass
class Deadline:
    """A point on the monotonic clock after which the command gives up (exit 8)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def end(self) -> float:
        """The deadline on the monotonic clock."""
        return self.started + self.seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return self.remaining <= 0

    def attempt(self) -> float:
        """The timeout of one attempt in a retry loop: `ATTEMPT_SHARE` of what is left."""
        return self.remaining * ATTEMPT_SHARE

    def check(self, doing: str) -> None:
        """Raise `DeadlineExceededError` naming what was being done if the deadline has passed."""
        if self.expired:
            raise DeadlineExceededError(f"timed out after {self.seconds:g}s while {doing}")


@dataclass(frozen=True)
class JobClock:
    """The CI job's own time limit: GitLab's CI_JOB_TIMEOUT (seconds) from CI_JOB_STARTED_AT."""

    timeout_s: float
    started_at: datetime  # timezone-aware

    def left(self, now: datetime) -> float:
        """Seconds until the job is killed (negative once past)."""
        return self.timeout_s - (now - self.started_at).total_seconds()


@dataclass(frozen=True)
class Fitted:
    """The command's deadline, and where it comes from: FLUX_CI_TIMEOUT, or the job's end."""

    seconds: float
    source: Source
    rollback_s: float  # the rollback's own deadline (FLUX_CI_ROLLBACK_TIMEOUT, fitted to the job)
    timeout_s: float  # FLUX_CI_TIMEOUT
    reserve_s: float = 0.0  # kept after the deadline, before the job's end (0 outside a job)
    job: JobClock | None = None
    job_left_s: float | None = None  # the job's time left when the command started

    def describe(self) -> str:
        """For the start line: which deadline applies, and why."""
        if self.job_left_s is None:
            return f"timeout {self.seconds:g}s"
        if self.source == "timeout":
            return f"timeout {self.seconds:g}s (the CI job ends in {self.job_left_s:.0f}s)"
        return (
            f"timeout {self.seconds:.0f}s, fitted to the CI job (it ends in {self.job_left_s:.0f}s; "
            f"{self.reserve_s:.0f}s kept for diagnostics, rollback and the report), not "
            f"FLUX_CI_TIMEOUT's {self.timeout_s:g}s"
        )

    def check_enough(self) -> None:
        """Exit 8 before anything is done when the job leaves less than `MIN_WORK_S` to push and wait."""
        if self.source == "job" and self.job is not None and self.seconds < MIN_WORK_S:
            raise DeadlineExceededError(_too_little(self))


def fit(timeout_s: float, *, job: JobClock | None, now: datetime, rollback_s: float | None = None) -> Fitted:
    """The command's deadline: FLUX_CI_TIMEOUT, or the job's end minus the reserve (see the module
    docstring) when that is earlier. `rollback_s`: FLUX_CI_ROLLBACK_TIMEOUT when a rollback is on.
    Pure: `now` is the wall clock (CI_JOB_STARTED_AT is one)."""
    if job is None:
        return Fitted(timeout_s, "timeout", rollback_s or 0.0, timeout_s)
    left = job.left(now)
    after = DIAGNOSTICS_S + 2 * STOP_GRACE_S + REPORT_MARGIN_S
    if rollback_s is not None:
        after += STOP_GRACE_S
    usable = left - after
    rollback_share = min(rollback_s, max(usable, 0.0) * ROLLBACK_SHARE) if rollback_s is not None else 0.0
    by_job = usable - rollback_share
    if timeout_s <= by_job:
        # The job leaves more than FLUX_CI_TIMEOUT needs: the rollback may use what remains.
        rollback = min(rollback_s, usable - timeout_s) if rollback_s is not None else 0.0
        return Fitted(timeout_s, "timeout", rollback, timeout_s, after + rollback, job, left)
    return Fitted(max(by_job, 0.0), "job", rollback_share, timeout_s, after + rollback_share, job, left)


def _too_little(fitted: Fitted) -> str:
    job, left = fitted.job, fitted.job_left_s or 0.0
    assert job is not None
    started = job.started_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    ends = f"it ends in {left:.0f}s" if left > 0 else f"it ended {-left:.0f}s ago"
    return (
        f"too little time left in the CI job to push and wait: {ends} (CI_JOB_TIMEOUT="
        f"{job.timeout_s:g}s from CI_JOB_STARTED_AT={started}); after {fitted.reserve_s:.0f}s "
        f"kept for diagnostics, rollback and the report, {fitted.seconds:.0f}s would be left, less than "
        f"the {MIN_WORK_S:g}s a push and a wait need (FLUX_CI_TIMEOUT is {fitted.timeout_s:g}s). Nothing "
        "was pushed; give the job more time (its timeout, or fewer steps before flux-ci)"
    )
