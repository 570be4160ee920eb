"""The Markdown report (FLUX_CI_OUTPUT=markdown and the GitHub job summary)."""

from __future__ import annotations

import re

from flux_ci.report.markdown import to_markdown
from flux_ci.report.models import (
    Artifact,
    Check,
    Checks,
    ConsumerState,
    DeadlineInfo,
    ErrorInfo,
    HistoryEntry,
    ObjectRef,
    Provenance,
    Report,
    SourceState,
    Status,
    Step,
    StepStatus,
    WaveOutcome,
    WaveStatus,
)

DIGEST = "sha256:" + "ab" * 32
NEWER = "sha256:" + "cd" * 32


def _report(**changes: object) -> Report:
    report = Report(
        command="deploy",
        artifact=Artifact(
            "oci://r.example/app", ("abc123", "latest"), DIGEST, "https://git/app", "main@sha1:abc"
        ),
        sources=[
            SourceState(
                ObjectRef("OCIRepository", "flux-system", "app"),
                "oci://r.example/app",
                f"latest@{DIGEST}",
                "True",
                "stored artifact",
                state="done",
            )
        ],
        consumers=[
            ConsumerState(
                ObjectRef("Kustomization", "flux-system", "app"),
                f"latest@{DIGEST}",
                "True",
                "Applied revision",
                state="done",
            )
        ],
        steps=[Step("push", StepStatus.OK, 1.234), Step("wait", StepStatus.OK, 2.0)],
    )
    for name, value in changes.items():
        setattr(report, name, value)
    return report


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_success_shows_the_digest_every_object_and_the_steps() -> None:
    text = to_markdown(_report())
    assert text.startswith("### ✅ flux-ci deploy: succeeded\n")
    assert f"| artifact | `oci://r.example/app@{DIGEST}` |" in text
    assert f"| digest | `{DIGEST}` |" in text  # whole, unlike the table for the log
    assert "| tags | `abc123`, `latest` |" in text
    assert (
        f"| OCIRepository | `flux-system/app` | `latest@{DIGEST}` | True | done | stored artifact |" in text
    )
    assert (
        f"| Kustomization | `flux-system/app` | `latest@{DIGEST}` | True | done | Applied revision |" in text
    )
    assert "steps: push ok 1.2s, wait ok 2.0s" in text
    assert "Error" not in text
    assert text.endswith("\n")


def test_each_row_has_as_many_cells_as_its_header() -> None:
    report = _report()
    report.consumers[0] = ConsumerState(
        ObjectRef("Kustomization", "flux-system", "app"), "", "False", "a | b\nc", state="failed"
    )
    for row in _table_rows(to_markdown(report)):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) in (2, 6), row


def test_what_flux_reports_cannot_add_markup_or_break_the_table() -> None:
    message = "<img src=x onerror=alert(1)> [click](https://evil.example) *bold* `code` a|b\nsecond line"
    report = _report(
        consumers=[
            ConsumerState(ObjectRef("Kustomization", "ns", "app"), "", "False", message, state="failed")
        ]
    )
    (row,) = [line for line in _table_rows(to_markdown(report)) if line.startswith("| Kustomization")]
    assert "<img" not in row
    assert "&lt;img src=x onerror=alert(1)&gt;" in row
    assert "\\[click\\](https://evil.example)" in row
    assert "\\*bold\\*" in row
    assert "\\`code\\`" in row
    assert "a\\|b second line" in row  # one line: a line break would end the table


def test_failure_shows_the_error_whole_in_a_block_it_cannot_close() -> None:
    message = "invalid configuration, fix these variables:\n  - FLUX_CI_TAG: ```not a tag```"
    report = _report(
        status=Status.FAILED,
        exit_code=2,
        artifact=None,
        sources=[],
        consumers=[],
        steps=[],
        error=ErrorInfo("config", message),
    )
    text = to_markdown(report)
    assert text.startswith("### ❌ flux-ci deploy: failed\n")
    assert "**Error** (exit 2, `config`, not retryable)" in text
    assert f"````text\n{message}\n````" in text
    assert "| artifact |" not in text


def test_superseded_and_retryable_are_said() -> None:
    report = _report(
        status=Status.SUPERSEDED,
        exit_code=9,
        error=ErrorInfo("superseded", "another pipeline pushed", retryable=False, superseded_by=NEWER),
    )
    text = to_markdown(report)
    assert text.startswith("### ⏭️ flux-ci deploy: superseded")
    assert f"superseded by `{NEWER}`" in text
    timeout = _report(
        status=Status.FAILED, exit_code=8, error=ErrorInfo("timeout", "deadline", retryable=True)
    )
    assert "(exit 8, `timeout`, retryable)" in to_markdown(timeout)


def test_doctor_checks_scope_and_notes() -> None:
    report = _report(
        command="doctor",
        artifact=None,
        checks=[Check("tools", True, "flux 2.9.3"), Check("registry", False, "401 <unauthorized>")],
        scope=["Kustomization: only namespace apps"],
        notes=["OCIRepository other/app follows tag prod: left out"],
    )
    text = to_markdown(report)
    assert "| ✅ | tools | flux 2.9.3 |" in text
    assert "| ❌ | registry | 401 &lt;unauthorized&gt; |" in text
    assert "**scope**\n\n- Kustomization: only namespace apps" in text
    assert "**notes**\n\n- OCIRepository other/app follows tag prod: left out" in text


def test_a_dry_run_without_digest_names_the_repository() -> None:
    report = _report(
        status=Status.DRY_RUN,
        artifact=Artifact("oci://r.example/app", ("abc123",), "", "", "main@sha1:abc"),
    )
    text = to_markdown(report)
    assert text.startswith("### 📝 flux-ci deploy: dry-run")
    assert "| artifact | `oci://r.example/app` |" in text
    assert "| digest |" not in text


def test_every_status_has_a_headline() -> None:
    for status in Status:
        headline = to_markdown(_report(status=status)).splitlines()[0]
        assert headline.startswith("### ")
        assert headline.endswith(f"flux-ci deploy: {status}")
        assert "🔹" not in headline  # each known status has its own mark


def test_history_is_a_table_per_consumer_and_pushers_cannot_add_markup() -> None:
    app = ObjectRef("Kustomization", "flux-system", "app")
    pusher = Provenance(pipeline_url="https://ci.example/p/1", user="<img src=x>")
    entry = HistoryEntry(app, f"latest@{DIGEST}", DIGEST, "ReconciliationSucceeded", "t0", "t1",
                         tags=("c1",), pushed_by=pusher, in_registry=True)  # fmt: skip
    text = to_markdown(_report(command="history", artifact=None, history=[entry]))
    assert "**Kustomization/flux-system/app**" in text
    rows = [row for row in _table_rows(text) if "`https://ci.example/p/1`" in row]
    assert rows == [
        f"| 1 | t1 | succeeded | `{DIGEST}` | c1 | &lt;img src=x&gt; | `https://ci.example/p/1` |"
    ]
    assert "<img" not in text


def test_checks_and_changed_are_said() -> None:
    consumer = ConsumerState(ObjectRef("Kustomization", "flux-system", "app"), "r", "True", "m", state="done",
                             checks=Checks.APPLY)  # fmt: skip
    text = to_markdown(_report(consumers=[consumer], changed=False))
    assert "done (applied, no health checks)" in text
    assert "**Unchanged**: every consumer already ran this digest." in text
    assert "**Changed**" in to_markdown(_report(changed=True))


def test_a_deadline_fitted_to_the_ci_job_is_said() -> None:
    assert "deadline: 13s, fitted to the CI job's end" in to_markdown(
        _report(deadline=DeadlineInfo(13.0, "job"))
    )
    assert "deadline" not in to_markdown(_report(deadline=DeadlineInfo(300.0, "timeout")))


def test_one_row_per_wave() -> None:
    waves = [
        WaveOutcome("canary", ("stg",), WaveStatus.SUCCEEDED, "2026-12-07T10:00:00Z", 1.25, 30.0),
        WaveOutcome("stable", ("prod_us",), WaveStatus.NOT_STARTED),
    ]
    text = to_markdown(_report(waves=waves))
    assert "| wave | clusters | status | seconds | soak |" in text
    assert "| `canary` | `stg` | succeeded | 1.2 | 30.0 |" in text
    assert "| `stable` | `prod_us` | not-started | - | - |" in text
    assert "| wave |" not in to_markdown(_report())
