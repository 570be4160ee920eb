"""The exit codes and the exception tree that decides them.

Every expected failure is raised as a `FluxCIError` subclass carrying its `ExitCode`, and SIGINT/SIGTERM
as `SignalInterruptError`; the CLI boundary (`flux_ci.cli.boundary`) is the only place that turns an
exception into a process exit status.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Stable exit codes, documented in the README. Never renumber."""

    OK = 0
    INTERNAL = 1
    CONFIG = 2
    TOOL = 3
    REGISTRY = 4
    CLUSTER = 5
    SOURCE_FAILED = 6
    CONSUMER_FAILED = 7
    TIMEOUT = 8
    SUPERSEDED = 9
    SIGINT = 130
    SIGTERM = 143


class FluxCIError(Exception):
    """An expected failure: its message is shown to the user as it is, without a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL
    # Worth running the job again unchanged? A registry or API hiccup yes; a config error or a failed
    # apply no (the same inputs fail the same way).
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code_name(self) -> str:
        """The machine-readable name used in JSON output, e.g. `consumer_failed`."""
        return self.exit_code.name.lower()


class ConfigError(FluxCIError):
    """Missing or invalid configuration, or a cluster set up so that a deploy can never succeed."""

    exit_code = ExitCode.CONFIG


class ToolError(FluxCIError):
    """A required CLI is missing, or reports a version flux-ci does not support."""

    exit_code = ExitCode.TOOL


class RegistryError(FluxCIError):
    """Pushing, tagging or logging in to the OCI registry failed."""

    exit_code = ExitCode.REGISTRY

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ClusterError(FluxCIError):
    """The Kubernetes API could not be reached, refused us, or lacks an object we need."""

    exit_code = ExitCode.CLUSTER

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SourceFailedError(FluxCIError):
    """An OCIRepository could not fetch or verify the artifact."""

    exit_code = ExitCode.SOURCE_FAILED


class ConsumerFailedError(FluxCIError):
    """A Kustomization or HelmRelease failed to apply the artifact or is unhealthy."""

    exit_code = ExitCode.CONSUMER_FAILED


class DeadlineExceededError(FluxCIError):
    """The command's single deadline (FLUX_CI_TIMEOUT) passed before the work was done."""

    exit_code = ExitCode.TIMEOUT
    retryable = True


class SupersededError(FluxCIError):
    """Before this artifact was applied, a newer one took its place on a tag a source follows."""

    exit_code = ExitCode.SUPERSEDED

    def __init__(self, message: str, *, by_digest: str) -> None:
        super().__init__(message)
        self.by_digest = by_digest


class SignalInterruptError(BaseException):
    """SIGINT or SIGTERM arrived; children were stopped before this was raised.

    A BaseException, like KeyboardInterrupt: no `except FluxCIError` (nor `except Exception`) on the
    way up may take it for a failure of the work and carry on; only the CLI boundary catches it.
    """

    retryable = False

    def __init__(self, signal_name: str, exit_code: ExitCode) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.message = f"interrupted by {signal_name}"
        self.exit_code = exit_code

    @property
    def code_name(self) -> str:
        return self.exit_code.name.lower()
