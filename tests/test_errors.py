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
