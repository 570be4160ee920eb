"""Progress for people, on stderr: one line as each step starts and ends, with elapsed time; in GitLab
CI each step is a collapsible log section, in GitHub Actions a log group. Stdout stays reserved for the
result.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from flux_ci.report.models import Step, StepStatus
from flux_ci.secrets import Masker

_SECTION_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class Progress:
    """Prints step lines and notes, and records each step's outcome for the report."""

    def __init__(
        self,
        masker: Masker,
        *,
        gitlab_sections: bool = False,
        github_groups: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self._masker = masker
        self._sections = gitlab_sections
        self._groups = github_groups
        self._out = out
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._label = ""
        self.steps: list[Step] = []

    def labelled(self, label: str) -> Progress:
        """This output for one of several clusters worked on at once: every line names the cluster,
        its steps are recorded here with it, and there are no log sections (concurrent ones would
        interleave)."""
        child = Progress(self._masker, out=self._out)
        child._started, child._lock, child.steps, child._label = self._started, self._lock, self.steps, label
        return child

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        """Time one step; an exception marks it failed and propagates."""
        began = time.monotonic()
        section = _SECTION_NAME.sub("_", f"flux_ci_{name}")
        if self._sections:
            self._raw(f"\x1b[0Ksection_start:{int(time.time())}:{section}\r\x1b[0K")
        if self._groups:
            from flux_ci.report import github  # noqa: PLC0415 - GitHub Actions only: other runs never load it

            self._raw(github.group_start(self._masker.mask(f"{name} {detail}".strip())) + "\n")
        self.say(f"▶ {name}{' ' + detail if detail else ''}")
        status = StepStatus.FAILED
        try:
            yield
            status = StepStatus.OK
        finally:
            took = time.monotonic() - began
            self.steps.append(Step(name, status, round(took, 3), cluster=self._label))
            if self._groups:  # closed before the outcome line, so a collapsed group still shows it
                from flux_ci.report import github  # noqa: PLC0415 - loaded already: the group start did

                self._raw(github.GROUP_END + "\n")
            mark = "✔" if status is StepStatus.OK else "✗"
            self.say(f"{mark} {name} {'done' if status is StepStatus.OK else 'failed'} in {took:.1f}s")
            if self._sections:
                self._raw(f"\x1b[0Ksection_end:{int(time.time())}:{section}\r\x1b[0K")

    def skip(self, name: str, why: str) -> None:
        self.steps.append(Step(name, StepStatus.SKIPPED, 0.0, cluster=self._label))
        self.say(f"- {name} skipped: {why}")

    def note(self, message: str) -> None:
        self.say(f"  {message}")

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        label = f"[{self._label}] " if self._label else ""
        self._raw(self._masker.mask(f"[{elapsed:6.1f}s] {label}{message}") + "\n")

    def _raw(self, text: str) -> None:
        out = self._out or sys.stderr  # looked up late: tests swap sys.stderr
        with self._lock:
            out.write(text)
            out.flush()
