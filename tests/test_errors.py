from __future__ import annotations

import pytest

from flux_ci.errors import (
    ClusterError,
    ConfigError,
    ConsumerFailedError,
    DeadlineExceededError,
    ExitCode,
    FluxCIError,
    RegistryError,
    SignalInterruptError,
    SourceFailedError,
    SupersededError,
    ToolError,
)


@pytest.mark.parametrize(
    ("error", "code", "name"),
    [
        (FluxCIError, 1, "internal"),
        (ConfigError, 2, "config"),
        (ToolError, 3, "tool"),
        (RegistryError, 4, "registry"),
        (ClusterError, 5, "cluster"),
        (SourceFailedError, 6, "source_failed"),
        (ConsumerFailedError, 7, "consumer_failed"),
        (DeadlineExceededError, 8, "timeout"),
    ],
)
def test_each_error_carries_its_documented_exit_code(error: type[FluxCIError], code: int, name: str) -> None:
    exc = error("boom")
    assert exc.exit_code == code
    assert exc.code_name == name
    assert exc.message == "boom"


def test_signal_interrupts_use_the_shell_convention() -> None:
    assert SignalInterruptError("SIGTERM", ExitCode.SIGTERM).exit_code == 143
    assert SignalInterruptError("SIGINT", ExitCode.SIGINT).exit_code == 130


def test_each_error_keeps_what_the_boundary_reports() -> None:
    assert RegistryError("down", retryable=True).retryable
    assert not RegistryError("refused").retryable
    assert ClusterError("gone", retryable=True).retryable
    assert not ClusterError("forbidden").retryable
    assert ClusterError("gone").args == ("gone",)
    assert RegistryError("down").args == ("down",)
    superseded = SupersededError("newer", by_digest="sha256:" + "a" * 64)
    assert (superseded.message, superseded.args, superseded.by_digest) == (
        "newer",
        ("newer",),
        "sha256:" + "a" * 64,
    )
    assert superseded.exit_code == 9
    interrupted = SignalInterruptError("SIGTERM", ExitCode.SIGTERM)
    assert (interrupted.message, str(interrupted), interrupted.code_name) == (
        "interrupted by SIGTERM", "interrupted by SIGTERM", "sigterm",
    )  # fmt: skip
    assert not interrupted.retryable
