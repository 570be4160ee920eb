"""The `flux-ci` command line: thin commands over `flow`, and the one boundary that turns the outcome
into output and an exit code. Configuration comes from the environment (`Settings`); the few flags
only mirror variables.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from flux_ci import __version__, flow
from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.doctor import run_doctor
from flux_ci.errors import ExitCode, FluxCIError, SignalInterruptError
from flux_ci.masking import Masker
from flux_ci.models import ErrorInfo, Report, Status
from flux_ci.progress import Progress
from flux_ci.render import to_dotenv, to_json, to_table
from flux_ci.runner import Runner
from flux_ci.settings import Settings

Work = Callable[[Context, Report], None]

# Variables that hold secrets: children get them neither in argv nor in their environment; the
# registry password reaches oras on stdin only.
SECRET_VARIABLES = (
    "FLUX_CI_REGISTRY_PASSWORD",
    "CI_REGISTRY_PASSWORD",
    "CI_JOB_TOKEN",
    "CI_DEPLOY_PASSWORD",
    "GITHUB_TOKEN",
)

app = typer.Typer(
    name="flux-ci",
    help=(
        "Push manifests as an OCI artifact and wait until Flux has applied exactly that artifact.\n\n"
        "Configured by environment variables (FLUX_CI_*, with GitLab's predefined variables as "
        "defaults); see the README for every variable and exit code."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass(frozen=True)
class Options:
    """The global flags; each mirrors a variable and wins over it."""

    verbose: int = 0
    output: str | None = None
    dry_run: bool | None = None
    timeout: str | None = None

    def overrides(self) -> dict[str, Any]:
        values = {"output": self.output, "dry_run": self.dry_run, "timeout": self.timeout}
        return {key: value for key, value in values.items() if value is not None}

    def then(self, later: Options) -> Options:
        """Flags given after the command name add to (or win over) those given before it."""
        return Options(
            verbose=self.verbose + later.verbose,
            output=later.output or self.output,
            dry_run=later.dry_run if later.dry_run is not None else self.dry_run,
            timeout=later.timeout or self.timeout,
        )


# The flags are accepted before and after the command name (`flux-ci -v deploy`, `flux-ci deploy -v`).
Verbose = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="Trace every external command (-vv: and its output)."),
]
Output = Annotated[
    str | None, typer.Option("--output", "-o", metavar="table|json", help="Output format (FLUX_CI_OUTPUT).")
]
DryRun = Annotated[
    bool | None, typer.Option("--dry-run", help="Print what would change, change nothing (FLUX_CI_DRY_RUN).")
]
Timeout = Annotated[
    str | None,
    typer.Option(
        "--timeout", metavar="DURATION", help="One deadline for the whole command (FLUX_CI_TIMEOUT)."
    ),
]


def _show_version(value: bool) -> None:
    if value:
        print(f"flux-ci {__version__}")
        raise typer.Exit


@app.callback()
def root(  # noqa: PLR0917 - Typer passes every option by keyword
    ctx: typer.Context,
    verbose: Verbose = 0,
    output: Output = None,
    dry_run: DryRun = None,
    timeout: Timeout = None,
    version: Annotated[  # noqa: ARG001 - handled eagerly by its callback
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Push manifests as an OCI artifact and wait until Flux has applied exactly that artifact."""
    ctx.obj = Options(verbose=verbose, output=output, dry_run=dry_run, timeout=timeout)


def _command(name: str, work: Work, help_text: str) -> None:
    """Register a command: the same flags as the root, then the boundary around `work`."""

    def command(
        ctx: typer.Context,
        verbose: Verbose = 0,
        output: Output = None,
        dry_run: DryRun = None,
        timeout: Timeout = None,
    ) -> int:
        later = Options(verbose=verbose, output=output, dry_run=dry_run, timeout=timeout)
        return _execute((ctx.obj or Options()).then(later), name, work)

    command.__name__ = name
    command.__doc__ = help_text
    app.command(name)(command)


_command(
    "push",
    flow.run_push,
    "Package FLUX_CI_PATH and push it to FLUX_CI_REPOSITORY:FLUX_CI_TAG, plus FLUX_CI_EXTRA_TAGS.",
)
_command(
    "reconcile",
    flow.run_reconcile,
    "Ask Flux to reconcile the OCIRepositories and wait until each has fetched FLUX_CI_DIGEST.",
)
_command(
    "wait",
    flow.run_wait,
    "Wait until the Kustomizations/HelmReleases reading the sources have applied FLUX_CI_DIGEST.",
)
_command("deploy", flow.run_deploy, "Push, reconcile and wait: the whole deployment, under one deadline.")
_command(
    "status",
    flow.run_status,
    "Show every source following the repository and every consumer reading them, as they are now.",
)
_command(
    "doctor",
    run_doctor,
    "Preflight: tools, configuration, registry credentials, cluster access and OCIRepository setup.",
)


def _execute(options: Options, command: str, work: Work) -> int:
    """The boundary: run the work, map any exception to an exit code, render the report once."""
    report = Report(command=command)
    masker = Masker()
    output = _output_from(options)
    settings: Settings | None = None
    runner: Runner | None = None
    progress: Progress | None = None
    try:
        settings = Settings.load(**options.overrides())
        output = settings.output
        if settings.registry_password is not None:
            masker.add(settings.registry_password.get_secret_value())
        runner = _runner(settings, options, masker)
        _ACTIVE_RUNNERS.append(runner)
        progress = Progress(masker, gitlab_sections=os.environ.get("GITLAB_CI") == "true")
        work(Context(settings, runner, Deadline(settings.timeout), progress), report)
        runner.check_interrupted()  # a signal during the last, child-free moments still counts
    except FluxCIError as exc:
        _failed(report, exc)
    except KeyboardInterrupt:
        _failed(report, SignalInterruptError("SIGINT", ExitCode.SIGINT))
    except Exception as exc:  # the boundary: a bug must still produce a report and exit 1
        _failed(report, FluxCIError(f"internal error (a bug in flux-ci): {type(exc).__name__}: {exc}"))
        _print_traceback(masker, verbose=options.verbose > 0)
    finally:
        if runner is not None:
            runner.stop_all()  # no child outlives flux-ci, whatever happened
            _ACTIVE_RUNNERS.remove(runner)
        if progress is not None:
            report.steps = list(progress.steps)
    _emit(report, output, _dotenv_from(settings), masker)
    return report.exit_code


def _runner(settings: Settings, options: Options, masker: Masker) -> Runner:
    env = {key: value for key, value in os.environ.items() if key not in SECRET_VARIABLES}
    trace = max(options.verbose, 1 if settings.trace else 0)
    return Runner(masker=masker, env=env, trace=trace, dry_run=settings.dry_run)


def _dotenv_from(settings: Settings | None) -> Path | None:
    """Where to write the dotenv report, even when other settings were invalid."""
    if settings is not None:
        return settings.dotenv
    raw = os.environ.get("FLUX_CI_DOTENV", "").strip()
    return Path(raw) if raw else None


def _output_from(options: Options) -> str:
    """The output format before settings are valid, so even a config error can be JSON."""
    chosen = options.output or os.environ.get("FLUX_CI_OUTPUT", "table")
    return "json" if chosen.strip().lower() == "json" else "table"


def _failed(report: Report, exc: FluxCIError) -> None:
    report.status = Status.FAILED
    report.exit_code = int(exc.exit_code)
    report.error = ErrorInfo(exc.code_name, exc.message)


def _emit(report: Report, output: str, dotenv: Path | None, masker: Masker) -> None:
    text = to_json(report) if output == "json" else to_table(report)
    sys.stdout.write(masker.mask(text))
    sys.stdout.flush()
    if report.error is not None:
        print(masker.mask(f"flux-ci: error: {report.error.message}"), file=sys.stderr)
    if dotenv is not None:
        try:
            dotenv.write_text(masker.mask(to_dotenv(report)))
        except OSError as exc:
            print(f"flux-ci: cannot write the dotenv report {dotenv}: {exc}", file=sys.stderr)


def _print_traceback(masker: Masker, *, verbose: bool) -> None:
    if verbose:
        print(masker.mask(traceback.format_exc()), file=sys.stderr)
    else:
        print("flux-ci: run with -v for the traceback, and please report it", file=sys.stderr)


_SIGNALS = {signal.SIGINT: ("SIGINT", ExitCode.SIGINT), signal.SIGTERM: ("SIGTERM", ExitCode.SIGTERM)}
_ACTIVE_RUNNERS: list[Runner] = []


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    name, code = _SIGNALS[signal.Signals(signum)]
    if not _ACTIVE_RUNNERS:  # nothing runs yet (settings, rendering): stop right here
        raise SignalInterruptError(name, code)
    for runner in list(_ACTIVE_RUNNERS):
        runner.interrupt(name, code)  # children stop now; the work raises at its next safe point


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: returns the exit code, never calls sys.exit itself."""
    for signum in _SIGNALS:
        signal.signal(signum, _on_signal)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="flux-ci", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: unknown command or option
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"flux-ci: error: {exc.message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", ExitCode.CONFIG))
    except typer.Abort:
        return int(ExitCode.SIGINT)
    return int(result) if isinstance(result, int) else 0
