"""Retries of the registry's transient faults (flux_ci/registry/retry.py); the real registry behind
real injected faults is in tests/e2e/test_faults.py."""

from __future__ import annotations

import io

import pytest

from flux_ci.context import Context
from flux_ci.errors import DeadlineExceededError, RegistryError
from flux_ci.registry.retry import retrying
from flux_ci.tools.runner import CommandResult
from tests.fakes import make_context
from tests.golden import text


def _ctx(seconds: float = 60) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    return make_context(seconds=seconds, out=out), out


def _result(exit_code: int, stderr: str = "") -> CommandResult:
    return CommandResult(("oras", "login"), exit_code, "", stderr, 0.01)


def test_a_registry_that_never_answers_is_a_retryable_registry_error_not_a_timeout() -> None:
    # A black hole: the last call is cut at the command's deadline. That is the registry's fault
    # (exit 4), not a deadline spent waiting for Flux (exit 8).
    ctx, _ = _ctx(seconds=0.05)

    def hangs() -> CommandResult:
        while not ctx.deadline.expired:
            pass
        raise DeadlineExceededError("timed out after 0.05s running: oras login r.example")

    with pytest.raises(RegistryError, match="did not answer before the deadline") as raised:
        retrying(ctx, "registry login", hangs)
    assert raised.value.retryable
    assert raised.value.exit_code == 4


def test_an_attempt_cut_at_its_share_of_the_time_left_is_tried_again() -> None:
    # The deadline not reached: the cut attempt is a transient fault, and the next one gets its share.
    answers: list[CommandResult | None] = [None, _result(0)]

    def hangs_once() -> CommandResult:
        answer = answers.pop(0)
        if answer is None:
            raise DeadlineExceededError("timed out after 20.0s running: oras login r.example")
        return answer

    ctx, out = _ctx()
    assert retrying(ctx, "registry login", hangs_once).ok
    assert "registry login: registry unreachable (no answer: timed out after 20.0s" in out.getvalue()


def test_a_transient_fault_is_retried_and_a_refusal_is_not() -> None:
    answers = [_result(1, text("oras/login-unreachable.stderr")), _result(0)]
    ctx, out = _ctx()
    assert retrying(ctx, "registry login", lambda: answers.pop(0)).ok
    assert "registry login: registry unreachable" in out.getvalue()
    assert "retry in 0.5s" in out.getvalue()
    refused = [_result(1, text("oras/login-wrong-password.stderr")), _result(0)]
    ctx, out = _ctx()
    assert not retrying(ctx, "registry login", lambda: refused.pop(0)).ok  # its failure, returned as is
    assert "retry in" not in out.getvalue()
