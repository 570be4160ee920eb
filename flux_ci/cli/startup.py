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


def start(tools: Sequence[str], verbose: int, timeout: str | None = None) -> Early:
    """The command's runner, before the settings are read, and its tools' version checks, started.
    -v traces at once, FLUX_CI_TRACE once the settings say so (`Runner.settle`); sh is loaded here,
    on the main thread, not in the first child's thread. `timeout`: the --timeout flag, if given."""
    from flux_ci import secrets  # noqa: PLC0415 - only for a command that runs
    from flux_ci.deadline import Deadline  # noqa: PLC0415
    from flux_ci.tools import toolcheck  # noqa: PLC0415 - only for a command that runs
    from flux_ci.tools.runner import Runner, load_sh  # noqa: PLC0415

    load_sh()
    masker = secrets.Masker(secrets.secret_values(os.environ))
    env = secrets.child_environment(os.environ)
    early = Deadline(early_timeout(timeout, os.environ))
    runner = Runner(masker=masker, env=env, trace=verbose, hold_trace=True, deadline=early)
    return Early(masker, runner, toolcheck.prefetch(runner, tools))


def early_timeout(flag: str | None, env: Mapping[str, str]) -> float:
    """FLUX_CI_TIMEOUT (or the --timeout flag) as far as it can be read before the settings: the
    children started before them end by it at the latest, until the settings give the command its
    deadline (`Runner.settle`). A value the settings will refuse counts as the default."""
    from flux_ci.deadline import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, parse_duration  # noqa: PLC0415

    text = (flag or env.get("FLUX_CI_TIMEOUT") or "").strip()
    try:
        seconds = parse_duration(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return seconds if 0 < seconds <= MAX_TIMEOUT_S else DEFAULT_TIMEOUT_S


def start_for(args: Sequence[str]) -> Early | None:
    """For a command named in args (not asking for help or the version): `start` it now."""
    spec = spec_in(args)
    if spec is None or not spec.tools or any(arg in ("--help", "--version") for arg in args):
        return None
    return start(spec.tools, verbosity_in(args), timeout_in(args))


def timeout_in(args: Sequence[str]) -> str | None:
    """The value of the last --timeout flag (`--timeout 5m` or `--timeout=5m`), as typer will read it."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--timeout" and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith("--timeout="):
            found = arg.removeprefix("--timeout=")
    return found


def verbosity_in(args: Sequence[str]) -> int:
    """-v, -vv and --verbose as typer will count them (their trace lines print at once; the rest
    are held until the settings are read)."""
    return sum(
        1 if arg == "--verbose" else len(arg) - 1 for arg in args if re.fullmatch(r"-v+|--verbose", arg)
    )
