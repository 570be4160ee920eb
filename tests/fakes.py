"""FakeRunner: a stand-in for `flux_ci.tools.runner.Runner` in unit tests, named as a fake.

It never starts a process: it records each argv (and whether the caller marked it `mutating`) and
answers from canned results, which the tests take from golden files of real flux/oras/kubectl output.
Like the real runner, in dry-run mode it skips mutating commands without consulting the answers,
stops what starts after `stop_all`, and raises at its next command once `interrupt`ed. The real runner
is tested against real child processes in tests/tools/test_runner.py, and the real CLIs in tests/e2e/.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from flux_ci.config.settings import Settings
from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.errors import ExitCode, SignalInterruptError
from flux_ci.report.progress import Progress
from flux_ci.secrets import Masker
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.runner import CommandResult, CommandRunner

Lines = list[str] | Callable[[], list[str]]


# What a child stopped by SIGTERM reports (128 + 15), as the real runner does after stop_all.
STOPPED_EXIT_CODE = 143


@dataclass
class Call:
    argv: tuple[str, ...]
    stdin: str | None
    env: Mapping[str, str | None]
    mutating: bool = False
    skipped: bool = False  # a mutating command that dry-run mode did not run
    trace_output: TraceOutput | None = None  # how the real runner would trace its output at -vv
    timeout: float | None = None


@dataclass
class FakeRunner:
    """Answers commands whose argv starts with a registered prefix, first match wins."""

    masker: Masker = field(default_factory=Masker)
    dry_run: bool = False
    answers: list[tuple[tuple[str, ...], CommandResult | Lines]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # what the real runner would print ([dry-run] ...)
    stopped: bool = False  # stop_all ran: what starts now is stopped at once
    interrupted: tuple[str, ExitCode] | None = None

    def answer(
        self, prefix: Sequence[str], *, stdout: str = "", stderr: str = "", exit_code: int = 0
    ) -> None:
        self.answers.append((tuple(prefix), CommandResult(tuple(prefix), exit_code, stdout, stderr, 0.01)))

    def answer_stream(self, prefix: Sequence[str], lines: Lines) -> None:
        """Lines to stream, or a function giving them when the stream starts (to echo earlier calls)."""
        self.answers.append((tuple(prefix), lines))

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult:
        assert timeout is None or timeout >= 0, f"negative timeout for {argv}"
        self.check_interrupted()
        feed = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
        skipped = mutating and self.dry_run
        self.calls.append(Call(tuple(argv), feed, dict(env or {}), mutating, skipped, trace_output, timeout))
        if skipped:
            self.said.append(f"[dry-run] would run: $ {' '.join(argv)}")
            return CommandResult(tuple(argv), 0, "", "", 0.0, dry_run=True)
        if self.stopped:
            return CommandResult(tuple(argv), STOPPED_EXIT_CODE, "", "", 0.0)
        answer = self._find(argv, stream=False)
        assert isinstance(answer, CommandResult)
        return CommandResult(tuple(argv), answer.exit_code, answer.stdout, answer.stderr, 0.01)

    def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str | None] | None = None,
        trace_output: TraceOutput | None = None,
    ) -> Generator[str, None, None]:
        assert timeout is None or timeout >= 0, f"negative timeout for {argv}"
        self.check_interrupted()
        self.calls.append(
            Call(tuple(argv), None, dict(env or {}), trace_output=trace_output, timeout=timeout)
        )
        if self.stopped:
            return
        answer = self._find(argv, stream=True)
        assert not isinstance(answer, CommandResult)
        yield from answer() if callable(answer) else answer
        self.check_interrupted()

    def stop_all(self) -> None:
        self.stopped = True

    def scoped(self) -> FakeRunner:
        """One scope for everything: a fake's stop_all ends every stream (tests of several
        scopes use the real runner)."""
        return self

    def interrupt(self, signal_name: str, exit_code: ExitCode) -> None:
        """What SIGINT/SIGTERM does to the real runner: everything stops, the next command raises."""
        self.interrupted = (signal_name, exit_code)
        self.stop_all()

    def check_interrupted(self) -> None:
        if self.interrupted is not None:
            raise SignalInterruptError(*self.interrupted)

    def commands(self) -> list[str]:
        """Each command line, without kubectl's `--request-timeout` (cut from the time left, it
        varies; tests/kube/test_cluster.py checks it)."""
        return [
            " ".join(a for a in call.argv if not a.startswith("--request-timeout=")) for call in self.calls
        ]

    def mutations(self) -> list[str]:
        """The commands the caller marked as changing the registry or the cluster."""
        return [" ".join(call.argv) for call in self.calls if call.mutating]

    def changes(self) -> list[str]:
        """The mutating commands that really ran (none in dry-run mode)."""
        return [" ".join(call.argv) for call in self.calls if call.mutating and not call.skipped]

    def _find(self, argv: Sequence[str], *, stream: bool) -> CommandResult | Lines:
        for prefix, answer in self.answers:
            if tuple(argv[: len(prefix)]) == prefix and (not isinstance(answer, CommandResult)) == stream:
                return answer
        raise AssertionError(f"unexpected {'stream' if stream else 'command'}: {' '.join(argv)}")


def make_context(
    settings: Settings | None = None,
    runner: CommandRunner | None = None,
    *,
    seconds: float | None = None,
    out: io.StringIO | None = None,
    masker: Masker | None = None,
) -> Context:
    """The one way unit tests build a command's Context: `settings` (default `Settings()`) run through
    `runner` (default a FakeRunner) under a deadline of `seconds` (default the settings' timeout), its
    progress lines written to `out` (default a throwaway buffer) through `masker` (default a fresh one;
    pass the runner's to share it, as the CLI does)."""
    settings = settings or Settings()
    deadline = Deadline(settings.timeout if seconds is None else seconds)
    progress = Progress(masker or Masker(), out=io.StringIO() if out is None else out)
    return Context(settings, runner or FakeRunner(), deadline, progress)
