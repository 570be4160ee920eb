"""Are the CLIs flux-ci drives present, at versions it supports? (exit 3 if not)"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flux_ci.errors import ToolError
from flux_ci.tools import flux, kubectl, oras
from flux_ci.tools.runner import CommandResult, CommandRunner

# The oldest versions whose flags and output flux-ci relies on: flux 2.6 (OCIRepository v1,
# push --insecure-registry), oras 1.2 (stable login/tag/resolve flags), kubectl 1.28.
MINIMUM_VERSIONS: dict[str, tuple[int, int, int]] = {
    "flux": (2, 6, 0),
    "oras": (1, 2, 0),
    "kubectl": (1, 28, 0),
}
_VERSION_COMMANDS: dict[str, tuple[Callable[[], list[str]], Callable[[str], str]]] = {
    "flux": (flux.version_argv, flux.parse_version),
    "oras": (oras.version_argv, oras.parse_version),
    "kubectl": (kubectl.version_argv, kubectl.parse_version),
}
_LEADING_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def version_tuple(version: str) -> tuple[int, int, int] | None:
    match = _LEADING_VERSION.match(version)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def prefetch(runner: CommandRunner, tools: Sequence[str]) -> dict[str, Future[CommandResult]]:
    """Start every tool's version check at once, before the settings are read: the checks are the
    first children of a command, and reading the settings (pydantic) takes as long as they do.
    Nothing is judged here; `require_tools` reads the results (or drops them on a config error).

    A check has no timeout of its own: it ends with the command's deadline at the latest (the
    runner's; before the settings are read, FLUX_CI_TIMEOUT as the command line and environment
    give it), like every other child."""
    if not tools:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(tools), thread_name_prefix="probe")
    try:
        return {tool: pool.submit(runner.run, _VERSION_COMMANDS[tool][0]()) for tool in tools}
    finally:
        pool.shutdown(wait=False)


def tool_version(runner: CommandRunner, tool: str, check: Future[CommandResult]) -> str:
    """The tool's version, from its started check, or ToolError if it is missing, broken or too old."""
    argv_of, parse = _VERSION_COMMANDS[tool]
    result = _result(runner, check)
    if not result.ok:
        raise ToolError(f"{tool} is installed but `{' '.join(argv_of())}` failed: {result.error_text()}")
    try:
        version = parse(result.stdout)
    except (ValueError, KeyError) as exc:
        raise ToolError(f"cannot read the version of {tool}: {exc}") from None
    found = version_tuple(version)
    minimum = MINIMUM_VERSIONS[tool]
    if found is None or found < minimum:
        wanted = ".".join(map(str, minimum))
        raise ToolError(f"{tool} {version} is not supported; flux-ci needs {tool} >= {wanted}")
    return version


Prefetched = Mapping[str, Future[CommandResult]]


def started(runner: CommandRunner, prefetched: Prefetched, tools: Sequence[str]) -> Prefetched:
    """Each tool's version check, running: the one the CLI started before the settings were read
    (`prefetched`), or one started now; all side by side."""
    checks = {tool: check for tool in tools if (check := prefetched.get(tool)) is not None}
    missing = [tool for tool in tools if tool not in checks]
    return checks | prefetch(runner, missing)


def require_tools(runner: CommandRunner, prefetched: Prefetched, tools: Sequence[str]) -> dict[str, str]:
    """Every tool's version; the first tool's problem wins."""
    checks = started(runner, prefetched, tools)
    return {tool: tool_version(runner, tool, checks[tool]) for tool in tools}


def _result(runner: CommandRunner, future: Future[CommandResult]) -> CommandResult:
    """A check's result, waited for in short slices: a SIGTERM is noticed at once."""
    while True:
        try:
            return future.result(timeout=0.1)
        except FutureTimeout:
            runner.check_interrupted()
