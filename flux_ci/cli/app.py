"""The `flux-ci` command line: typer parses the flags, `boundary` runs the command. Configuration comes
from the environment (`Settings`, checked for the command by `plan` before anything runs); the few
flags only mirror variables.

Only typer is imported up here: `--help`, `--version` and usage errors stay fast because a command
imports the settings, the plan and its work when it runs (and the runner loads `sh` only when the first
child starts).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from flux_ci import __version__
from flux_ci.cli import boundary, startup
from flux_ci.cli.specs import COMMANDS, CommandSpec, command_in, spec_in
from flux_ci.cli.startup import Early
from flux_ci.errors import ExitCode

if TYPE_CHECKING:
    from flux_ci.context import Context
    from flux_ci.report.models import Report

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
        options = (ctx.obj or Options()).then(later)
        return boundary.execute(
            spec, verbose=options.verbose, output=options.output, overrides=options.overrides(),
            early=options.early,
        )  # fmt: skip

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


# --- usage errors: Click's text on stderr, and in JSON mode the one JSON document on stdout ------


def _usage_failure(code: int, message: str, args: Sequence[str]) -> int:
    """Exit code `code` for a failure before any command ran; in JSON mode its document too."""
    if _output_in(args) == "json":
        from flux_ci import secrets  # noqa: PLC0415 - JSON mode only
        from flux_ci.report import models  # noqa: PLC0415 - JSON mode only

        known = {int(member) for member in ExitCode}
        name = ExitCode(code).name.lower() if code in known else ExitCode.INTERNAL.name.lower()
        report = models.Report(
            command=command_in(args),
            status=models.Status.FAILED,
            exit_code=code,
            error=models.ErrorInfo(name, message),
        )
        masker = secrets.Masker(secrets.secret_values(os.environ))
        boundary.write_document(report, "json", masker)
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
    from flux_ci.tools.supervise import install_signal_handlers  # noqa: PLC0415 - cheap: sh loads on first use

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
