"""Are the CLIs flux-ci drives present, at versions it supports? (exit 3 if not)"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from flux_ci.context import Context
from flux_ci.errors import ToolError
from flux_ci.tools import flux, kubectl, oras

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
_VERSION_TIMEOUT_S = 30.0


def version_tuple(version: str) -> tuple[int, int, int] | None:
    match = _LEADING_VERSION.match(version)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def tool_version(ctx: Context, tool: str) -> str:
    """The tool's version, or ToolError if it is missing, broken or too old."""
    argv_of, parse = _VERSION_COMMANDS[tool]
    result = ctx.runner.run(argv_of(), timeout=ctx.timeout(_VERSION_TIMEOUT_S))
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


def require_tools(ctx: Context, tools: Sequence[str]) -> dict[str, str]:
    """Every tool's version, asked concurrently: each answers in tens of milliseconds, in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, len(tools))) as pool:
        versions = list(pool.map(lambda tool: tool_version(ctx, tool), tools))
    return dict(zip(tools, versions, strict=True))
