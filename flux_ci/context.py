"""What every step of one flux-ci command shares: settings, the runner, the deadline, progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from flux_ci.deadline import Deadline
from flux_ci.report.progress import Progress
from flux_ci.tools.runner import CommandResult, CommandRunner

if TYPE_CHECKING:  # pydantic loads with the settings, after the tool checks have started
    from flux_ci.config.manifests import Scan
    from flux_ci.config.settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    runner: CommandRunner
    deadline: Deadline
    progress: Progress
    # Set when one concurrent wait failed: the other watches stop instead of running to the deadline.
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The tools' version checks, started before the settings were read (`toolcheck.prefetch`).
    prefetched: Mapping[str, Future[CommandResult]] = field(default_factory=dict)
    # What FLUX_CI_PATH's artifact holds, as the configuration check read it (`plan.Plan`).
    manifests: Scan | None = None

    def active(self) -> bool:
        return not self.deadline.expired and not self.cancelled.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep within the deadline, in short steps: a SIGTERM must not wait for the sleep to end."""
        until = time.monotonic() + min(seconds, self.deadline.remaining)
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
            self.runner.check_interrupted()

    def result(self, future: Future[T]) -> T:
        """A worker thread's result, waited for in short slices: the waiting thread must notice
        SIGTERM at once, not when the worker's child finally ends."""
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                self.runner.check_interrupted()

    def timeout(self, cap: float | None = None) -> float:
        """A child's timeout: what is left of the deadline, optionally capped."""
        remaining = self.deadline.remaining
        return min(remaining, cap) if cap is not None else remaining
