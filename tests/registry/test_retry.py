"""Retries of the registry's transient faults (flux_ci/registry/retry.py); the real registry behind
real injected faults is in tests/e2e/test_faults.py."""

from __future__ import annotations

import io

import pytest

from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.errors import DeadlineExceededError, RegistryError
from flux_ci.registry.retry import retrying
from flux_ci.report.progress import Progress
from flux_ci.secrets import Masker
from flux_ci.tools.runner import CommandResult
from tests.fakes import FakeRunner
from tests.golden import text


def _ctx(seconds: float = 60) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    return Context(Settings(), FakeRunner(), Deadline(seconds), Progress(Masker(), out=out)), out


def _result(exit_code: int, stderr: str = "") -> CommandResult:
    return CommandResult(("oras", "login"), exit_code, "", stderr, 0.01)


def test_a_registry_that_never_answers_is_a_retryable_registry_error_not_a_timeout() -> None:
    # A black hole: the call is cut at the deadline. That is the registry's fault (exit 4), not a
    # deadline spent waiting for Flux (exit 8).
    def hangs() -> CommandResult:
        raise DeadlineExceededError("timed out after 20.0s running: oras login r.example")

    ctx, _ = _ctx()
    with pytest.raises(RegistryError, match="did not answer before the deadline") as raised:
        retrying(ctx, "registry login", hangs)
    assert raised.value.retryable
    assert raised.value.exit_code == 4


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
