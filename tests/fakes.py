"""FakeRunner: a stand-in for `flux_ci.runner.Runner` in unit tests, named as a fake.

It never starts a process: it records each argv and answers from canned results, which the tests
take from golden files of real flux/oras/kubectl output. The real runner is tested against real
child processes in tests/test_runner.py, and the real CLIs in tests/e2e/.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from flux_ci.masking import Masker
from flux_ci.runner import CommandResult

Lines = list[str] | Callable[[], list[str]]


@dataclass
class Call:
    argv: tuple[str, ...]
    stdin: str | None
    env: Mapping[str, str | None]


@dataclass
class FakeRunner:
    """Answers commands whose argv starts with a registered prefix, first match wins."""

    masker: Masker = field(default_factory=Masker)
    dry_run: bool = False
    answers: list[tuple[tuple[str, ...], CommandResult | Lines]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

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
        timeout: float,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
    ) -> CommandResult:
        assert timeout >= 0, f"negative timeout for {argv}"
        feed = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
        self.calls.append(Call(tuple(argv), feed, dict(env or {})))
        if mutating and self.dry_run:
            return CommandResult(tuple(argv), 0, "", "", 0.0, dry_run=True)
        answer = self._find(argv, stream=False)
        assert isinstance(answer, CommandResult)
        return CommandResult(tuple(argv), answer.exit_code, answer.stdout, answer.stderr, 0.01)

    def stream(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str | None] | None = None
    ) -> Generator[str, None, None]:
        self.calls.append(Call(tuple(argv), None, dict(env or {})))
        answer = self._find(argv, stream=True)
        assert not isinstance(answer, CommandResult)
        yield from answer() if callable(answer) else answer

    def stop_all(self) -> None:
        """Nothing runs, so nothing to stop."""

    def commands(self) -> list[str]:
        return [" ".join(call.argv) for call in self.calls]

    def _find(self, argv: Sequence[str], *, stream: bool) -> CommandResult | Lines:
        for prefix, answer in self.answers:
            if tuple(argv[: len(prefix)]) == prefix and (not isinstance(answer, CommandResult)) == stream:
                return answer
        raise AssertionError(f"unexpected {'stream' if stream else 'command'}: {' '.join(argv)}")
