"""Why the sandbox could not start, in words a person can act on."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox could not be started, reached or stopped."""


class MissingToolError(SandboxError):
    """A binary the sandbox needs has not been built or installed."""


class ComponentError(SandboxError):
    """One component failed to start; the message carries the tail of its log."""

    def __init__(self, component: str, reason: str, log_tail: str) -> None:
        self.component = component
        self.reason = reason
        self.log_tail = log_tail
        tail = log_tail.rstrip() or "(log is empty)"
        super().__init__(f"{component} failed to start: {reason}\n--- last lines of its log ---\n{tail}")
