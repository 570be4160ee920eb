"""How flux-ci's variables are named, and the words that tell a user which ones to fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from flux_ci.config.ci import CI_FALLBACKS

PREFIX = "FLUX_CI_"

# FLUX_CI_ names in a job's environment that are not settings, yet not typos:
# - read by this project's own build and test tooling (Makefile, .ci/build-tools.sh, tests/sandbox);
_TOOLING_VARIABLES = frozenset({"FLUX_CI_TOOLS_DIR", "FLUX_CI_BUILD_DIR", "FLUX_CI_SANDBOX_DIR"})
_TOOLING_PREFIX = "FLUX_CI_SANDBOX_"  # the sandbox's env file: its registry address and credentials
# - written by the dotenv report (report/dotenv.py); GitLab hands them to the later jobs.
_REPORT_VARIABLES = frozenset(
    {
        "FLUX_CI_STATUS",
        "FLUX_CI_EXIT_CODE",
        "FLUX_CI_RETRYABLE",
        "FLUX_CI_URL",
        "FLUX_CI_SOURCE_REVISION",
        "FLUX_CI_SUPERSEDED_BY",
        "FLUX_CI_CHANGED",
        "FLUX_CI_ROLLBACK_STATUS",
        "FLUX_CI_CLUSTERS",
        "FLUX_CI_CLUSTERS_SUCCEEDED",
        "FLUX_CI_CLUSTERS_FAILED",
        "FLUX_CI_PREVIOUS_DIGEST",
        "FLUX_CI_DOTENV_TRUNCATED",
        "FLUX_CI_WAVES_SUCCEEDED",
        "FLUX_CI_WAVE_FAILED",
    }
)

# A field's problem: (field name, message); the field is "" for an unknown variable name.
Problem = tuple[str, str]


def variable_name(field_name: str) -> str:
    return f"{PREFIX}{field_name.upper()}"


def missing_message(field_name: str) -> str:
    fallback = CI_FALLBACKS.get(field_name)
    hint = f" (in GitLab CI it defaults from {fallback})" if fallback else ""
    return f"{variable_name(field_name)} is not set{hint}"


def config_message(problems: list[str]) -> str:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"invalid configuration, fix these variables:\n{lines}"


def known_variables(prefixed_fields: Sequence[str]) -> frozenset[str]:
    """Every FLUX_CI_ name a job's environment may hold without it being a typo."""
    settings = frozenset(variable_name(name) for name in prefixed_fields)
    return settings | _TOOLING_VARIABLES | _REPORT_VARIABLES


def unknown_variables(
    env: Mapping[str, str], prefixed_fields: Sequence[str], own_names: Mapping[str, str]
) -> list[str]:
    """A message for every FLUX_CI_ name that flux-ci does not know, with the setting it resembles.
    `own_names`: FLUX_CI_<FIELD> → the variable that field is really read from (COSIGN_PASSWORD)."""
    known = known_variables(prefixed_fields)
    fields = sorted(name.upper() for name in prefixed_fields)
    problems = []
    for name in sorted(env):
        upper = name.upper()  # pydantic-settings reads names case-insensitively, so this does too
        if not upper.startswith(PREFIX) or upper in known or upper.startswith(_TOOLING_PREFIX):
            continue
        # Compared without the prefix every name shares, which would make any two look alike.
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), fields, n=1)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        if own := own_names.get(upper.removeprefix(PREFIX)):
            hint = f"; set {own} instead"
        problems.append(f"{name} is not a flux-ci variable{hint}")
    return problems
