"""One deadline for a whole command: every wait and every child process timeout is cut from it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from flux_ci.errors import DeadlineExceededError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


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
    def remaining(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return self.remaining <= 0

    def check(self, doing: str) -> None:
        """Raise `DeadlineExceededError` naming what was being done if the deadline has passed."""
        if self.expired:
            raise DeadlineExceededError(f"timed out after {self.seconds:g}s while {doing}")
