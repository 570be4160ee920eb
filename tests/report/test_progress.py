from __future__ import annotations

import io

import pytest

from flux_ci.report.models import StepStatus
from flux_ci.report.progress import Progress
from flux_ci.secrets import Masker


def test_step_lines_with_elapsed_time_and_recorded_outcome() -> None:
    out = io.StringIO()
    progress = Progress(Masker(["secret-xyz"]), out=out)
    with progress.step("push", "oci://r/app:t"):
        progress.note("token secret-xyz")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("▶ push oci://r/app:t")
    assert lines[0].startswith("[")
    assert lines[1].endswith("token ****")
    assert "✔ push done in" in lines[2]
    assert [(s.name, s.status) for s in progress.steps] == [("push", StepStatus.OK)]


def test_failed_step_is_recorded_and_reraised() -> None:
    progress = Progress(Masker(), out=io.StringIO())
    with pytest.raises(RuntimeError), progress.step("wait"):
        raise RuntimeError("boom")
    assert progress.steps[0].status is StepStatus.FAILED


def test_gitlab_sections_wrap_each_step() -> None:
    out = io.StringIO()
    progress = Progress(Masker(), gitlab_sections=True, out=out)
    with progress.step("reconcile"):
        pass
    text = out.getvalue()
    assert "\x1b[0Ksection_start:" in text
    assert ":flux_ci_reconcile\r\x1b[0K" in text
    assert "\x1b[0Ksection_end:" in text


def test_skip_is_recorded() -> None:
    progress = Progress(Masker(), out=io.StringIO())
    progress.skip("tag", "no extra tags")
    assert progress.steps[0].status is StepStatus.SKIPPED
