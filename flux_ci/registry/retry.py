"""Retries for the registry: transient failures (connection refused or reset, 5xx, 429, timeouts:
`tools.faults`, the classification source-controller's fetch errors are judged by too) are retried
with a bounded backoff inside the command's deadline; a refusal (401/403, wrong credentials) never
is: it would fail the same way again, and retrying can lock an account.

An attempt given only a share of the time left (`Deadline.attempt`) and cut at its end (a registry
that accepts the connection and never answers) is transient too: the next attempt gets its share of
what is left. An attempt cut by the command's deadline itself is a registry that did not answer in
time: exit 4, retryable, like any other registry fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

from flux_ci.context import Context
from flux_ci.errors import DeadlineExceededError, RegistryError
from flux_ci.tools.faults import transient
from flux_ci.tools.runner import CommandResult

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then give up: the registry is down, not hiccupping


def retrying(ctx: Context, what: str, attempt: Callable[[], CommandResult]) -> CommandResult:
    """Run `attempt` until it succeeds or fails for good; a registry still unreachable when the
    backoff or the deadline runs out is a retryable RegistryError naming its last answer."""
    result = _attempt(ctx, what, attempt)
    for pause in BACKOFF_S:
        if _final(result):
            return result
        if ctx.deadline.remaining <= pause:
            break
        ctx.progress.note(f"{what}: registry unreachable ({_why(result)}); retry in {pause:g}s")
        ctx.pause(pause)
        result = _attempt(ctx, what, attempt)
    if _final(result):
        return result
    message = f"{what} failed: the registry stayed unreachable: {_why(result)}"
    raise RegistryError(message, retryable=True)


def _attempt(
    ctx: Context, what: str, attempt: Callable[[], CommandResult]
) -> CommandResult | DeadlineExceededError:
    """The attempt's result, or its cut by its own share of the time left (a hung connection).

    A registry that never answers (a black hole: the connection open, nothing ever coming back)
    may hold the last attempt until the command's deadline: that is a registry fault like any
    other timeout, transient (exit 4, retryable), not a deadline spent waiting for Flux (exit 8)."""
    try:
        return attempt()
    except DeadlineExceededError as exc:
        if ctx.deadline.expired:
            message = f"{what} failed: the registry did not answer before the deadline ({exc.message})"
            raise RegistryError(message, retryable=True) from exc
        return exc


def _final(result: CommandResult | DeadlineExceededError) -> TypeGuard[CommandResult]:
    """Done retrying: success, dry-run, or a failure that would fail again."""
    if isinstance(result, DeadlineExceededError):
        return False
    return result.ok or result.dry_run or not transient(result.stderr)


def _why(result: CommandResult | DeadlineExceededError) -> str:
    if isinstance(result, DeadlineExceededError):
        return f"no answer: {result.message}"
    return result.error_text()
