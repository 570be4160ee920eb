"""The `flux-ci` command line: thin commands over `flow`, and the one boundary that turns the outcome
into output and an exit code. Configuration comes from the environment (`Settings`, checked for the
command by `plan` before anything runs); the few flags only mirror variables.

Only typer is imported up here: `--help`, `--version` and usage errors stay fast because a command
imports the settings, the plan and the flow when it runs (and the runner loads `sh` only when the first
child starts).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flux_ci import __version__, startup
from flux_ci.commands import COMMANDS, CommandSpec, command_in, spec_in
from flux_ci.errors import ExitCode, FluxCIError, SignalInterruptError
from flux_ci.startup import Early

if TYPE_CHECKING:
    from flux_ci.context import Context
    from flux_ci.models import Report
    from flux_ci.secrets import Masker
    from flux_ci.settings import Settings

    Work = Callable[[Context, Report], None]


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="flux-ci",
        help=(
            "Push manifests as an OCI artifact and wait until Flux has applied exactly that artifact.\n\n"
            "Configured by environment variables (FLUX_CI_*, with GitLab's predefined variables as "
            "defaults); `flux-ci COMMAND --help` lists the ones each command reads, the README all of them."
        ),
        no_args_is_help=True,
        add_completion=True,  # `flux-ci --install-completion` (bash, zsh, fish, PowerShell)
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


app = _new_app()


@dataclass(frozen=True)
class Options:
    """The global flags; each mirrors a variable and wins over it."""

    verbose: int = 0
    output: str | None = None
    dry_run: bool | None = None
    timeout: str | None = None
    early: Early | None = None  # what `main` started before the command line was parsed

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
            early=self.early or later.early,
        )


# The flags are accepted before and after the command name (`flux-ci -v deploy`, `flux-ci deploy -v`).
Verbose = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="Trace every external command (-vv: and its output)."),
]
Output = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="table|json|markdown", help="Output format (FLUX_CI_OUTPUT)."),
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
    early = ctx.obj if isinstance(ctx.obj, Early) else None
    ctx.obj = Options(verbose=verbose, output=output, dry_run=dry_run, timeout=timeout, early=early)


def _register(spec: CommandSpec, into: typer.Typer = app) -> None:
    """Register a command: the same flags as the root, then the boundary around its work."""

    def command(
        ctx: typer.Context,
        verbose: Verbose = 0,
        output: Output = None,
        dry_run: DryRun = None,
        timeout: Timeout = None,
    ) -> int:
        later = Options(verbose=verbose, output=output, dry_run=dry_run, timeout=timeout)
        return _execute((ctx.obj or Options()).then(later), spec)

    command.__name__ = spec.name
    command.__doc__ = spec.help_text()
    into.command(spec.name)(command)


for _spec in COMMANDS:
    _register(_spec)


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The command line to parse args with. Typer builds every registered command's options on each
    call; when args name a command, only that one is built (help, which may be the root's, and "no
    such command" need them all, and get `app`)."""
    spec = spec_in(args)
    if spec is None or "--help" in args:
        return app
    one = _new_app()
    one.callback()(root)
    _register(spec, into=one)
    return one


def _execute(options: Options, spec: CommandSpec) -> int:
    """The boundary: check the configuration, run the work, map any exception to an exit code,
    render the report once."""
    # Imported here, not at the top: only a command that runs pays for pydantic and sh.
    from flux_ci import models  # noqa: PLC0415
    from flux_ci.context import Context  # noqa: PLC0415
    from flux_ci.deadline import Deadline  # noqa: PLC0415
    from flux_ci.progress import Progress  # noqa: PLC0415

    report = models.Report(command=spec.name)
    output = _output_from(options)
    settings: Settings | None = None
    progress: Progress | None = None
    early = options.early or startup.start(spec.tools, options.verbose)
    masker, runner, prefetched = early.masker, early.runner, early.prefetched
    try:
        from flux_ci import plan  # noqa: PLC0415 - pydantic: after the checks have started

        settings = plan.load(spec.name, options.overrides())  # every problem at once, before any work
        output = settings.output
        if settings.registry_password is not None:
            masker.add(settings.registry_password.get_secret_value())
        runner.settle(trace=max(options.verbose, 1 if settings.trace else 0), dry_run=settings.dry_run)
        work = _work(spec.work)
        startup_done()
        progress = Progress(
            masker,
            gitlab_sections=os.environ.get("GITLAB_CI") == "true",
            github_groups=os.environ.get("GITHUB_ACTIONS") == "true",
        )
        progress.say(plan.describe(settings, spec.name))
        work(Context(settings, runner, Deadline(settings.timeout), progress, prefetched=prefetched), report)
        runner.check_interrupted()  # a signal during the last, child-free moments still counts
    except FluxCIError as exc:
        _failed(report, exc)
    except KeyboardInterrupt:
        _failed(report, SignalInterruptError("SIGINT", ExitCode.SIGINT))
    except Exception as exc:  # the boundary: a bug must still produce a report and exit 1
        _failed(report, FluxCIError(f"internal error (a bug in flux-ci): {type(exc).__name__}: {exc}"))
        _print_traceback(masker, verbose=options.verbose > 0)
    finally:
        runner.stop_all()  # no child outlives flux-ci, whatever happened
        if progress is not None:
            report.steps = list(progress.steps)
    _emit(report, output, _dotenv_from(settings), masker)
    return report.exit_code


def startup_done() -> None:
    """Every module the command needs is loaded: keep them out of the garbage collector's sight
    for good (`gc.freeze`) and let it run again, for what the command allocates while it waits.
    Only where `flux_ci.__main__` turned it off: an embedding program's collector is its own."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _work(target: str) -> Work:
    module, _, function = target.partition(":")
    work: Work = getattr(import_module(module), function)
    return work


def _dotenv_from(settings: Settings | None) -> Path | None:
    """Where to write the dotenv report, even when other settings were invalid."""
    if settings is not None:
        return settings.dotenv
    raw = os.environ.get("FLUX_CI_DOTENV", "").strip()
    return Path(raw) if raw else None


def _output_from(options: Options) -> str:
    """The output format before settings are valid, so even a config error can be JSON."""
    chosen = (options.output or os.environ.get("FLUX_CI_OUTPUT", "table")).strip().lower()
    return chosen if chosen in ("json", "markdown") else "table"


def _failed(report: Report, exc: FluxCIError) -> None:
    from flux_ci.errors import SupersededError  # noqa: PLC0415
    from flux_ci.models import ErrorInfo, Status  # noqa: PLC0415

    superseded_by = exc.by_digest if isinstance(exc, SupersededError) else ""
    report.status = Status.SUPERSEDED if superseded_by else Status.FAILED
    report.exit_code = int(exc.exit_code)
    report.error = ErrorInfo(exc.code_name, exc.message, retryable=exc.retryable, superseded_by=superseded_by)


def _emit(report: Report, output: str, dotenv: Path | None, masker: Masker) -> None:
    from flux_ci.render import to_dotenv  # noqa: PLC0415

    masked = _write_document(report, output, masker)
    if masked.error is not None:
        print(f"flux-ci: error: {masked.error.message}", file=sys.stderr)
    if dotenv is not None:
        try:
            dotenv.write_text(to_dotenv(masked))
        except OSError as exc:
            print(masker.mask(f"flux-ci: cannot write the dotenv report {dotenv}: {exc}"), file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from flux_ci import github  # noqa: PLC0415 - GitHub Actions only

        github.publish(masked, os.environ)  # outputs, job summary, ::error:: annotation


def _write_document(report: Report, output: str, masker: Masker) -> Report:
    """Write the table or the one JSON document to stdout; returns the masked report it rendered.

    Masked value by value before rendering: in finished JSON an escaped secret would slip through.
    """
    from flux_ci.secrets import mask_report  # noqa: PLC0415

    masked = mask_report(report, masker)
    sys.stdout.write(_renderer(output)(masked))
    sys.stdout.flush()
    return masked


def _renderer(output: str) -> Callable[[Report], str]:
    """The renderer of one output format; only its own module is loaded."""
    if output == "markdown":
        from flux_ci.markdown import to_markdown  # noqa: PLC0415

        return to_markdown
    from flux_ci.render import to_json, to_table  # noqa: PLC0415

    return to_json if output == "json" else to_table


def _print_traceback(masker: Masker, *, verbose: bool) -> None:
    if verbose:
        print(masker.mask(traceback.format_exc()), file=sys.stderr)
    else:
        print("flux-ci: run with -v for the traceback, and please report it", file=sys.stderr)


# --- usage errors: Click's text on stderr, and in JSON mode the one JSON document on stdout ------


def _usage_failure(code: int, message: str, args: Sequence[str]) -> int:
    """Exit code `code` for a failure before any command ran; in JSON mode its document too."""
    if _output_in(args) == "json":
        from flux_ci import models, secrets  # noqa: PLC0415 - JSON mode only

        known = {int(member) for member in ExitCode}
        name = ExitCode(code).name.lower() if code in known else ExitCode.INTERNAL.name.lower()
        report = models.Report(
            command=command_in(args),
            status=models.Status.FAILED,
            exit_code=code,
            error=models.ErrorInfo(name, message),
        )
        _write_document(report, "json", secrets.Masker(secrets.secret_values(os.environ)))
    return code


def _output_in(args: Sequence[str]) -> str:
    """The output format asked for by -o/--output (the last one wins) or FLUX_CI_OUTPUT."""
    chosen = os.environ.get("FLUX_CI_OUTPUT", "")
    for index, arg in enumerate(args):
        if arg in ("-o", "--output") and index + 1 < len(args):
            chosen = args[index + 1]
        elif arg.startswith("--output="):
            chosen = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2:
            chosen = arg[2:]
    return "json" if chosen.strip().lower() == "json" else "table"


def main(argv: Sequence[str] | None = None, *, early: Early | None = None) -> int:
    """The command line's outcome as an exit code; never calls sys.exit itself. `early`: what
    `flux_ci.__main__` started for it before typer loaded, else started here (`startup.start_for`)."""
    # SIGINT/SIGTERM: every child gets SIGTERM (SIGKILL after a grace), the work raises, exit 130/143.
    from flux_ci.runner import install_signal_handlers  # noqa: PLC0415 - cheap: sh loads on first use

    install_signal_handlers()
    args = list(sys.argv[1:] if argv is None else argv)
    early = early or startup.start_for(args)
    try:
        result = _app_for(args)(args=args, prog_name="flux-ci", standalone_mode=False, obj=early)
    except typer.TyperException as exc:  # usage errors: unknown command or option
        show = getattr(exc, "show", None)
        if callable(show):
            show()  # Click's usage text, on stderr
        else:
            print(f"flux-ci: error: {exc.message}", file=sys.stderr)
        message = exc.format_message() if args else "no command given: run flux-ci --help"
        return _usage_failure(int(getattr(exc, "exit_code", ExitCode.CONFIG)), message, args)
    except typer.Abort:
        return _usage_failure(int(ExitCode.SIGINT), "interrupted by SIGINT", args)
    finally:
        if early is not None:
            early.runner.stop_all()  # a usage error never reached the command: its checks stop here
    return int(result) if isinstance(result, int) else 0


def run(early: Early | None = None) -> NoReturn:
    """`main`, then exit at once (`flux_ci.__main__.run`, the console script, ends here).

    Tearing the interpreter down (every module pydantic, typer and sh loaded, object by object) costs
    a short-lived CLI about 30 ms of CPU for nothing: the work is done, its children are stopped, its
    files are closed and its private directories removed by the time `main` returns. So the output
    is flushed and the process ends with `os._exit`.
    """
    code = main(early=early)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): nothing to say there
            stream.flush()
    os._exit(code)
