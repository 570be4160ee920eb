"""GitHub Actions (`GITHUB_ACTIONS=true`): step outputs in `$GITHUB_OUTPUT`, the Markdown report in
`$GITHUB_STEP_SUMMARY`, a log group around each step and an `::error::` annotation on failure.

The functions that build text are pure; `publish` is the one writer. Workflow commands go to stderr
(the runner reads both streams), so stdout keeps exactly the table or the one JSON document.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from flux_ci.report.markdown import to_markdown
from flux_ci.report.models import Report

GROUP_END = "::endgroup::"


def enabled(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


# The action's output for each fact of the dotenv report it carries (README: "GitHub Actions").
OUTPUT_NAMES = {
    "FLUX_CI_STATUS": "status",
    "FLUX_CI_EXIT_CODE": "exit-code",
    "FLUX_CI_RETRYABLE": "retryable",
    "FLUX_CI_DIGEST": "digest",
    "FLUX_CI_URL": "url",
    "FLUX_CI_TAG": "tag",
    "FLUX_CI_REVISION": "revision",
    "FLUX_CI_SUPERSEDED_BY": "superseded-by",
    "FLUX_CI_PREVIOUS_DIGEST": "previous-digest",
    "FLUX_CI_ROLLBACK_STATUS": "rollback-status",
    "FLUX_CI_CLUSTERS_SUCCEEDED": "clusters-succeeded",
    "FLUX_CI_CLUSTERS_FAILED": "clusters-failed",
    "FLUX_CI_WAVES_SUCCEEDED": "waves-succeeded",
    "FLUX_CI_WAVE_FAILED": "wave-failed",
}


def outputs(report: Report) -> dict[str, str]:
    """The step outputs: the same facts as the dotenv report, under the action's output names."""
    from flux_ci.report.dotenv import report_values  # noqa: PLC0415 - at the end of a run only: render is loaded

    values = report_values(report)
    return {output: values[name] for name, output in OUTPUT_NAMES.items()}


def output_file_text(values: Mapping[str, str]) -> str:
    """`name=value` lines; a value with a line break uses the `name<<delimiter` form."""
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            import secrets  # noqa: PLC0415 - rare (a multi-line value), and it loads random and hmac

            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"  # random: a value cannot end it early
            lines += [f"{name}<<{delimiter}", value, delimiter]
        else:
            lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def group_start(title: str) -> str:
    return f"::group::{_escape_data(title)}"


def error_command(report: Report) -> str | None:
    """The `::error::` annotation for a failed run (None when it succeeded)."""
    error = report.error
    if error is None:
        return None
    title = f"flux-ci {report.command}: {error.code} (exit {report.exit_code})"
    return f"::error title={_escape_property(title)}::{_escape_data(error.message)}"


def publish(report: Report, env: Mapping[str, str], err: TextIO | None = None) -> None:
    """Write the outputs and the summary to the files the runner names, then annotate a failure.

    A file that cannot be written is said on stderr; the exit code stays the deploy's own.
    """
    out = err or sys.stderr
    _append(env.get("GITHUB_OUTPUT"), output_file_text(outputs(report)), out)
    _append(env.get("GITHUB_STEP_SUMMARY"), to_markdown(report), out)
    if (command := error_command(report)) is not None:
        print(command, file=out, flush=True)


def _append(path: str | None, text: str, err: TextIO) -> None:
    if not path:
        return
    try:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"flux-ci: cannot write {path}: {exc.strerror or exc}", file=err)


# Workflow command escaping, as the runner decodes it (actions/toolkit `command.ts`).
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
