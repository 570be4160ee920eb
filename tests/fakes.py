"""FakeRunner: a stand-in for `flux_ci.runner.Runner` in unit tests, named as a fake.

It never starts a process: it records each argv and answers from canned results, which the tests
take from golden files of real flux/oras/kubectl output. The real runner is tested against real
child processes in tests/test_runner.py, and the real CLIs in tests/e2e/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from flux_ci.masking import Masker
from flux_ci.runner import CommandResult


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
    answers: list[tuple[tuple[str, ...], CommandResult | list[str]]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def answer(self, prefix: Sequence[str], *, stdout: str = "", stderr: str = "", exit_code: int = 0) -> None:
        self.answers.append((tuple(prefix), CommandResult(tuple(prefix), exit_code, stdout, stderr, 0.01)))

    def answer_stream(self, prefix: Sequence[str], lines: list[str]) -> None:
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
        assert timeout > 0, f"no time left for {argv}"
        feed = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
        self.calls.append(Call(tuple(argv), feed, dict(env or {})))
        if mutating and self.dry_run:
            return CommandResult(tuple(argv), 0, "", "", 0.0, dry_run=True)
        answer = self._find(argv)
        assert isinstance(answer, CommandResult), f"{argv} is a stream, not a command"
        return CommandResult(tuple(argv), answer.exit_code, answer.stdout, answer.stderr, 0.01)

    def stream(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str | None] | None = None
    ) -> Iterator[str]:
        self.calls.append(Call(tuple(argv), None, dict(env or {})))
        answer = self._find(argv)
        assert isinstance(answer, list), f"{argv} is a command, not a stream"
        yield from answer

    def stop_all(self) -> None:
        """Nothing runs, so nothing to stop."""

    def commands(self) -> list[str]:
        return [" ".join(call.argv) for call in self.calls]

    def _find(self, argv: Sequence[str]) -> CommandResult | list[str]:
        for prefix, answer in self.answers:
            if tuple(argv[: len(prefix)]) == prefix:
                return answer
        raise AssertionError(f"unexpected command: {' '.join(argv)}")
