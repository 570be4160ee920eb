"""Retries for the registry: transient failures (connection refused or reset, 5xx, 429, timeouts:
`tools.faults`, the classification source-controller's fetch errors are judged by too) are retried
with a bounded backoff inside the command's deadline; a refusal (401/403, wrong credentials) never
is: it would fail the same way again, and retrying can lock an account.
"""

from __future__ import annotations

from collections.abc import Callable

from flux_ci.context import Context
from flux_ci.errors import DeadlineExceededError, RegistryError
from flux_ci.tools.faults import transient
from flux_ci.tools.runner import CommandResult

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then give up: the registry is down, not hiccupping


def retrying(ctx: Context, what: str, attempt: Callable[[], CommandResult]) -> CommandResult:
    """Run `attempt` until it succeeds or fails for good; a registry still unreachable when the
    backoff or the deadline runs out is a retryable RegistryError naming its last answer."""
    result = _answered(what, attempt)
    for pause in BACKOFF_S:
        if result.ok or result.dry_run or not transient(result.stderr):
            return result
        if ctx.deadline.remaining <= pause:
            break
        ctx.progress.note(f"{what}: registry unreachable ({result.error_text()}); retry in {pause:g}s")
        ctx.pause(pause)
        result = _answered(what, attempt)
    if result.ok or result.dry_run or not transient(result.stderr):
        return result
    message = f"{what} failed: the registry stayed unreachable: {result.error_text()}"
    raise RegistryError(message, retryable=True)


def _answered(what: str, attempt: Callable[[], CommandResult]) -> CommandResult:
    """One attempt. A registry that never answers (a black hole: the connection open, nothing ever
    coming back) holds the call until the deadline: that is a registry fault like any timeout,
    transient (exit 4, retryable), not a deadline spent waiting for Flux (exit 8)."""
    try:
        return attempt()
    except DeadlineExceededError as exc:
        message = f"{what} failed: the registry did not answer before the deadline ({exc.message})"
        raise RegistryError(message, retryable=True) from exc
