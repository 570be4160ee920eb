"""No silent skip in CI: in CI mode (`CI=true`) a skipped test fails the run, unless it is on the
allowlist tests/skips.toml with the reason it skips and why that is right.

A pytest plugin (tests/conftest.py loads it). A developer's machine may lack a tool and skip; CI
must not, or a broken install step would turn tests into skips while the run stays green.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ALLOWLIST = Path(__file__).with_name("skips.toml")


@dataclass(frozen=True)
class AllowedSkip:
    test: str  # a node id; `*` matches anything (parametrized rows)
    reason: str  # a part of the skip's own reason
    why: str

    def covers(self, nodeid: str, reason: str) -> bool:
        # Only `*` is a wildcard: the brackets of a parametrized id are themselves.
        pattern = ".*".join(re.escape(part) for part in self.test.split("*"))
        return re.fullmatch(pattern, nodeid) is not None and self.reason in reason


def ci_mode(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("CI", "").strip().lower() == "true"


def allowlist(path: Path = ALLOWLIST) -> list[AllowedSkip]:
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("skip", [])
    allowed = [AllowedSkip(e["test"], e["reason"], e["why"]) for e in entries]
    for entry in allowed:
        if not (entry.test and entry.reason and entry.why.strip()):
            raise ValueError(f"{path}: incomplete entry {entry}")
    return allowed


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def unexpected(nodeid: str, reason: str, allowed: list[AllowedSkip]) -> bool:
    return not any(entry.covers(nodeid, reason) for entry in allowed)


_UNEXPECTED = "skipped in CI mode (CI=true), and not on the allowlist"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and ci_mode():
        reason = skip_reason(report)
        if unexpected(report.nodeid, reason, allowlist()):
            report.outcome = "failed"
            report.longrepr = (
                f"{_UNEXPECTED} {ALLOWLIST.name}: {reason}\n"
                "In CI every test runs: install what it needs (.ci/run), or list it there with why."
            )
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """In CI mode, one line: how many tests skipped, on the allowlist and not (each of those failed).

    Counted from the reports the terminal shows, so a run split over workers (`pytest -n`) counts
    every worker's."""
    if ci_mode():
        allowed = [r for r in terminalreporter.stats.get("skipped", []) if getattr(r, "skipped", False)]
        failed = terminalreporter.stats.get("failed", [])
        bad = [r for r in failed if _UNEXPECTED in getattr(r, "longreprtext", "")]  # xdist adds a line first
        terminalreporter.write_line(
            f"skips in CI mode: {len(allowed)} allowlisted ({ALLOWLIST.name}), {len(bad)} unexpected (failed)"
        )
