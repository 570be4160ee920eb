"""The one boundary of a command: check the configuration, run the work, turn whatever it raised into
an exit code, and write the report once (stdout, the dotenv file, GitHub's outputs).

Nothing below this module decides an exit code or writes the result; nothing raised below it, nor a
failure to render or write the result, gets past it as a traceback.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux_ci.cli import startup
from flux_ci.cli.specs import CommandSpec, work_of
from flux_ci.errors import ExitCode, FluxCIError, SignalInterruptError

if TYPE_CHECKING:
    from flux_ci.config.settings import Settings
    from flux_ci.deadline import Fitted
    from flux_ci.report.models import Report
    from flux_ci.secrets import Masker

Failure = FluxCIError | SignalInterruptError


def execute(
    spec: CommandSpec,
    *,
    verbose: int,
    output: str | None,
    overrides: Mapping[str, Any],
    early: startup.Early | None,
) -> int:
    """Run one command from its settings to its report; its exit code."""
    # Imported here, not at the top: only a command that runs pays for pydantic and sh.
    from flux_ci.context import Context  # noqa: PLC0415
    from flux_ci.deadline import Deadline  # noqa: PLC0415
    from flux_ci.report import models  # noqa: PLC0415
    from flux_ci.report.progress import Progress  # noqa: PLC0415

    report = models.Report(command=spec.name)
    chosen_output = _output_from(output)
    settings: Settings | None = None
    progress: Progress | None = None
    early = early or startup.start(spec.tools, verbose, overrides.get("timeout"))
    masker, runner, prefetched = early.masker, early.runner, early.prefetched
    try:
        from flux_ci.config import plan  # noqa: PLC0415 - pydantic: after the checks have started

        checked = plan.load(spec.name, overrides)  # every problem at once, before any work
        settings = checked.settings
        chosen_output = settings.output
        if settings.registry_password is not None:
            masker.reveal(settings.registry_password)
        fitted = fit_deadline(settings, spec.name)
        report.deadline = models.DeadlineInfo(round(fitted.seconds, 1), fitted.source)
        if settings.rollback and spec.name in _ROLL_BACK:  # its deadline, fitted to the job too
            settings = settings.model_copy(update={"rollback_timeout": fitted.rollback_s})
        deadline = Deadline(fitted.seconds)
        trace = max(verbose, 1 if settings.trace else 0)
        runner.settle(trace=trace, dry_run=settings.dry_run, deadline=deadline)
        work = work_of(spec.name)
        startup_done()
        progress = Progress(
            masker,
            gitlab_sections=os.environ.get("GITLAB_CI") == "true",
            github_groups=os.environ.get("GITHUB_ACTIONS") == "true",
        )
        progress.say(plan.describe(settings, spec.name, fitted))
        fitted.check_enough()  # exit 8 now, before anything is pushed, if the job has too little left
        ctx = Context(
            settings, runner, deadline, progress, prefetched=prefetched, manifests=checked.manifests
        )
        work(ctx, report)
        runner.check_interrupted()  # a signal during the last, child-free moments still counts
        if settings.dry_run and spec.changes:
            report.status = models.Status.DRY_RUN
    except (FluxCIError, SignalInterruptError) as exc:
        failed(report, exc)
    except KeyboardInterrupt:
        failed(report, SignalInterruptError("SIGINT", ExitCode.SIGINT))
    except Exception as exc:  # the boundary: a bug must still produce a report and exit 1
        failed(report, FluxCIError(f"internal error (a bug in flux-ci): {type(exc).__name__}: {exc}"))
        _print_traceback(masker, verbose=verbose > 0)
    finally:
        runner.stop_all()  # no child outlives flux-ci, whatever happened
        if progress is not None:
            report.steps = list(progress.steps)
    emit(report, chosen_output, _dotenv_from(settings), masker)
    return report.exit_code


# The commands that may roll back (FLUX_CI_ROLLBACK): the rollback's deadline is part of the job's.
_ROLL_BACK = ("deploy", "promote")


def fit_deadline(settings: Settings, command: str) -> Fitted:
    """The command's deadline: FLUX_CI_TIMEOUT, or in a GitLab job its end minus a reserve for the
    diagnostics, the rollback and the report, when that is earlier (`deadline.fit`). The rollback's
    own deadline comes with it, fitted to the job as well."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from flux_ci.deadline import fit  # noqa: PLC0415

    rollback = settings.rollback_timeout if settings.rollback and command in _ROLL_BACK else None
    return fit(settings.timeout, job=settings.job_clock, now=datetime.now(UTC), rollback_s=rollback)


def startup_done() -> None:
    """Every module the command needs is loaded: keep them out of the garbage collector's sight
    for good (`gc.freeze`) and let it run again, for what the command allocates while it waits.
    Only where `flux_ci.__main__` turned it off: an embedding program's collector is its own."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def failed(report: Report, exc: Failure) -> None:
    """Record a failure on the report: its status, exit code and error."""
    from flux_ci.errors import SupersededError  # noqa: PLC0415
    from flux_ci.report.models import ErrorInfo, Status  # noqa: PLC0415

    superseded_by = exc.by_digest if isinstance(exc, SupersededError) else ""
    report.status = Status.SUPERSEDED if superseded_by else Status.FAILED
    report.exit_code = int(exc.exit_code)
    report.error = ErrorInfo(exc.code_name, exc.message, retryable=exc.retryable, superseded_by=superseded_by)


def emit(report: Report, output: str, dotenv: Path | None, masker: Masker) -> None:
    """Write the report to stdout, the dotenv file and GitHub's files. A report that cannot be
    rendered is an internal error (exit 1) said on stderr; one that cannot be written (a closed
    stdout, a full disk) is said on stderr and leaves the exit code as it was."""
    # Everything is rendered before anything is written: a renderer's bug becomes exit 1 in every
    # output, never a traceback after stdout already said otherwise.
    masked = masker.mask_tree(report)
    document = _render(report, masked, output, masker)
    dotenv_text = None
    if dotenv is not None:
        outcome = masked.exit_code
        dotenv_text = _render_dotenv(report, masked, masker)
        if masked.exit_code != outcome:  # the dotenv's own failure changed the outcome: say it alike
            document = _render(report, masked, output, masker)
    _write_stdout(document, masker)
    if masked.error is not None:
        _say(f"flux-ci: error: {masked.error.message}")
    if dotenv is not None and dotenv_text is not None:
        _write_dotenv(dotenv_text, dotenv, masker)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        try:
            from flux_ci.report import github  # noqa: PLC0415 - GitHub Actions only

            github.publish(masked, os.environ)  # outputs, job summary, ::error:: annotation
        except Exception as exc:
            _say(masker.mask(f"flux-ci: cannot write GitHub Actions' outputs: {exc}"))


def write_document(report: Report, output: str, masker: Masker) -> Report:
    """Render the report and write it to stdout; returns the masked report."""
    masked, document = render_document(report, output, masker)
    _write_stdout(document, masker)
    return masked


def render_document(report: Report, output: str, masker: Masker) -> tuple[Report, str]:
    """The masked report (masked value by value: in finished JSON an escaped secret would slip
    through) and the document stdout gets."""
    masked = masker.mask_tree(report)
    return masked, _render(report, masked, output, masker)


def _render(report: Report, masked: Report, output: str, masker: Masker) -> str:
    """The document; a renderer's bug is exit 1, said in a minimal document."""
    try:
        return renderer(output)(masked)
    except Exception as exc:  # a bug in a renderer: the outcome must still be told
        _render_failed(report, masked, exc, masker)
        return renderer("json")(masked) if output == "json" else ""


def renderer(output: str) -> Callable[[Report], str]:
    """The renderer of one output format; only its own module is loaded."""
    if output == "markdown":
        from flux_ci.report.markdown import to_markdown  # noqa: PLC0415

        return to_markdown
    from flux_ci.report.render import to_json, to_table  # noqa: PLC0415

    return to_json if output == "json" else to_table


def _render_failed(report: Report, masked: Report, exc: Exception, masker: Masker) -> None:
    from flux_ci.report.models import ErrorInfo, Status  # noqa: PLC0415

    message = f"internal error (a bug in flux-ci) rendering the report: {type(exc).__name__}: {exc}"
    if masked.error is not None:
        message += f"; the command itself ended with: {masked.error.message}"
    for target in (report, masked):
        target.status, target.exit_code = Status.FAILED, int(ExitCode.INTERNAL)
        target.error = ErrorInfo(ExitCode.INTERNAL.name.lower(), masker.mask(message))
        # The rows are what failed to render: keep only what the minimal JSON document needs.
        target.diagnostics, target.changes = [], []


def _write_stdout(document: str, masker: Masker) -> None:
    """stdout holds the one document; a reader that went away (`| head`) ends no run in a traceback."""
    try:
        sys.stdout.write(document)
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError) as exc:
        _say(masker.mask(f"flux-ci: the report could not be written to stdout: {exc}"))
        _silence_stdout()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so that flushing what is left at exit cannot fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def _render_dotenv(report: Report, masked: Report, masker: Masker) -> str | None:
    """The dotenv report's text; a renderer's bug is exit 1 (the report says so), never a traceback."""
    from flux_ci.report.dotenv import TRUNCATED_KEY, to_dotenv  # noqa: PLC0415

    try:
        text = to_dotenv(masked)
    except Exception as exc:  # a bug: later jobs must not read a success that was not rendered
        _render_failed(report, masked, exc, masker)
        try:
            return to_dotenv(masked)
        except Exception:
            return None
    if f"\n{TRUNCATED_KEY}=" in f"\n{text}":
        _say(f"flux-ci: the dotenv report was over GitLab's limit: shortened ({TRUNCATED_KEY} names what)")
    return text


def _write_dotenv(text: str, path: Path, masker: Masker) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        _say(masker.mask(f"flux-ci: cannot write the dotenv report {path}: {exc}"))


def _dotenv_from(settings: Settings | None) -> Path | None:
    """Where to write the dotenv report, even when other settings were invalid."""
    if settings is not None:
        return settings.dotenv
    raw = os.environ.get("FLUX_CI_DOTENV", "").strip()
    return Path(raw) if raw else None


def _output_from(chosen: str | None) -> str:
    """The output format before settings are valid, so even a config error can be JSON."""
    value = (chosen or os.environ.get("FLUX_CI_OUTPUT", "table")).strip().lower()
    return value if value in ("json", "markdown") else "table"


def _print_traceback(masker: Masker, *, verbose: bool) -> None:
    if verbose:
        _say(masker.mask(traceback.format_exc()))
    else:
        _say("flux-ci: run with -v for the traceback, and please report it")


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone too: nothing left to tell
        print(line, file=sys.stderr, flush=True)
