"""What a command starts before its command line is parsed: its runner and its tools' version checks.

The checks are a command's first children. Typer (which loads pydantic to coerce option values) and
the settings take as long to load as the checks take to run, so `flux_ci.__main__` starts them
before it imports either; this module imports neither.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flux_ci.cli.specs import spec_in

if TYPE_CHECKING:
    from concurrent.futures import Future

    from flux_ci.secrets import Masker
    from flux_ci.tools.runner import CommandResult, Runner


@dataclass(frozen=True)
class Early:
    """A command's runner, and its tools' version checks running."""

    masker: Masker
    runner: Runner
    prefetched: Mapping[str, Future[CommandResult]]


def start(tools: Sequence[str], verbose: int) -> Early:
    """The command's runner, before the settings are read, and its tools' version checks, started.
    -v traces at once, FLUX_CI_TRACE once the settings say so (`Runner.settle`); sh is loaded here,
    on the main thread, not in the first child's thread."""
    from flux_ci import secrets  # noqa: PLC0415 - only for a command that runs
    from flux_ci.tools import toolcheck  # noqa: PLC0415 - only for a command that runs
    from flux_ci.tools.runner import Runner, load_sh  # noqa: PLC0415

    load_sh()
    masker = secrets.Masker(secrets.secret_values(os.environ))
    env = secrets.child_environment(os.environ)
    runner = Runner(masker=masker, env=env, trace=verbose, hold_trace=True)
    return Early(masker, runner, toolcheck.prefetch(runner, tools))


def start_for(args: Sequence[str]) -> Early | None:
    """For a command named in args (not asking for help or the version): `start` it now."""
    spec = spec_in(args)
    if spec is None or not spec.tools or any(arg in ("--help", "--version") for arg in args):
        return None
    return start(spec.tools, verbosity_in(args))


def verbosity_in(args: Sequence[str]) -> int:
    """-v, -vv and --verbose as typer will count them (their trace lines print at once; the rest
    are held until the settings are read)."""
    return sum(
        1 if arg == "--verbose" else len(arg) - 1 for arg in args if re.fullmatch(r"-v+|--verbose", arg)
    )
