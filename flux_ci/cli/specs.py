"""The commands flux-ci has: what each runs, which tools it checks, and what its --help says.

Typer-free, so that `flux_ci.cli.startup` can look a command up before typer loads; `flux_ci.cli.app` turns
these into typer commands.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from flux_ci.context import Context
    from flux_ci.report.models import Report

    Work = Callable[[Context, Report], None]

# What each command reads and how it can end, for its --help. Every command also reads these:
_COMMON_VARIABLES = "FLUX_CI_TIMEOUT, FLUX_CI_OUTPUT, FLUX_CI_DOTENV, FLUX_CI_TRACE, FLUX_CI_DRY_RUN"
_COMMON_EXITS = "and any command: 1 internal error, 130/143 interrupted"
_PUSH_VARIABLES = (
    "FLUX_CI_PATH, FLUX_CI_REPOSITORY, FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS, FLUX_CI_SOURCE, FLUX_CI_REVISION, "
    "FLUX_CI_IGNORE_PATHS, FLUX_CI_REPRODUCIBLE, FLUX_CI_ALLOW_EMPTY, FLUX_CI_PIPELINE_URL, FLUX_CI_JOB_URL, "
    "FLUX_CI_PIPELINE_USER, FLUX_CI_WAVES"
)
_REGISTRY_VARIABLES = "FLUX_CI_REGISTRY_USER, FLUX_CI_REGISTRY_PASSWORD, FLUX_CI_INSECURE_REGISTRY"
_CLUSTER_VARIABLES = "FLUX_CI_OCIREPOSITORY, FLUX_CI_NAMESPACE, FLUX_CI_KUBE_CONTEXT"
_DEPLOY_VARIABLES = (
    "FLUX_CI_WAIT_FOR, FLUX_CI_REQUIRE_HEALTH, FLUX_CI_OCIREPOSITORY, FLUX_CI_NAMESPACE, FLUX_CI_KUBE_CONTEXT"
)
_ROLLBACK_VARIABLES = "FLUX_CI_ROLLBACK, FLUX_CI_ROLLBACK_TIMEOUT"
# What moves the clusters: in waves, and never during a deploy freeze (GitLab's CI_DEPLOY_FREEZE).
_DELIVERY_VARIABLES = (
    "FLUX_CI_WAVES, FLUX_CI_WAVE_SOAK, FLUX_CI_DEPLOY_FREEZE (CI_DEPLOY_FREEZE), FLUX_CI_IGNORE_FREEZE"
)
_NOTIFY_VARIABLES = (
    "FLUX_CI_NOTIFY, FLUX_CI_RECEIVER_URL, FLUX_CI_RECEIVER, FLUX_CI_RECEIVER_TOKEN, "
    "FLUX_CI_RECEIVER_TYPE, FLUX_CI_RECEIVER_OIDC_TOKEN, FLUX_CI_VERIFY"
)


@dataclass(frozen=True)
class CommandSpec:
    """One subcommand: its work (imported only when it runs) and what its --help says."""

    name: str
    summary: str
    variables: str
    exits: str
    tools: tuple[str, ...] = ()  # whose versions are checked: started before the settings are read
    # A dry run of a command that changes things ends with status dry-run; a read-only one's is real.
    changes: bool = True

    def help_text(self) -> str:
        reads = textwrap.fill(
            f"Reads: {self.variables}; and {_COMMON_VARIABLES}.", width=88, subsequent_indent="  "
        )
        exits = textwrap.fill(f"Exit codes: {self.exits}; {_COMMON_EXITS}.", width=88, subsequent_indent="  ")
        # \b keeps Click from re-wrapping the lists into one paragraph.
        return f"{self.summary}\n\n\b\n{reads}\n{exits}"


COMMANDS = (
    CommandSpec(
        "push",
        "Package FLUX_CI_PATH and push it to FLUX_CI_REPOSITORY:FLUX_CI_TAG, plus FLUX_CI_EXTRA_TAGS.",
        f"{_PUSH_VARIABLES}, {_REGISTRY_VARIABLES}",
        "0 pushed, 2 configuration, 3 tool missing or too old, 4 registry, 8 timed out",
        tools=("flux", "oras"),
    ),
    CommandSpec(
        "reconcile",
        "Ask Flux to reconcile the OCIRepositories and wait until each has fetched FLUX_CI_DIGEST.",
        f"FLUX_CI_DIGEST, FLUX_CI_REPOSITORY, FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS, {_CLUSTER_VARIABLES}, "
        f"{_REGISTRY_VARIABLES}, {_NOTIFY_VARIABLES}",
        "0 fetched, 2 configuration, 3 tool, 4 registry, 5 cluster, 6 source failed, 8 timed out, "
        "9 superseded",
        tools=("oras", "kubectl"),
    ),
    CommandSpec(
        "wait",
        "Wait until the Kustomizations/HelmReleases reading the sources have applied FLUX_CI_DIGEST.",
        f"FLUX_CI_DIGEST, FLUX_CI_WAIT_FOR, FLUX_CI_REQUIRE_HEALTH, FLUX_CI_REPOSITORY, FLUX_CI_TAG, "
        f"FLUX_CI_EXTRA_TAGS, FLUX_CI_REVISION, {_CLUSTER_VARIABLES}, {_REGISTRY_VARIABLES}",
        "0 applied, 2 configuration, 3 tool, 4 registry, 5 cluster, 6 source failed, 7 consumer failed, "
        "8 timed out, 9 superseded",
        tools=("oras", "kubectl"),
    ),
    CommandSpec(
        "deploy",
        "Push, reconcile and wait: the whole deployment, under one deadline (in waves with FLUX_CI_WAVES).",
        f"{_PUSH_VARIABLES}, {_DEPLOY_VARIABLES}, {_REGISTRY_VARIABLES}, {_NOTIFY_VARIABLES}, "
        f"{_ROLLBACK_VARIABLES}, {_DELIVERY_VARIABLES}",
        "0 applied (with FLUX_CI_VERIFY=false: triggered, nothing verified), 2 configuration (also: a "
        "deploy freeze), 3 tool, 4 registry, 5 cluster, 6 source failed, 7 consumer failed (also: during "
        "a wave's soak), 8 timed out, 9 superseded",
        tools=("flux", "oras", "kubectl"),
    ),
    CommandSpec(
        "promote",
        "Point FLUX_CI_EXTRA_TAGS (or each wave's tag in turn) at a digest pushed before (FLUX_CI_DIGEST, "
        "or FLUX_CI_TAG's), and wait until the clusters following those tags applied it. Nothing is "
        "packaged or pushed.",
        f"FLUX_CI_DIGEST, FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS, FLUX_CI_REPOSITORY, {_DEPLOY_VARIABLES}, "
        f"{_REGISTRY_VARIABLES}, {_NOTIFY_VARIABLES}, {_ROLLBACK_VARIABLES}, {_DELIVERY_VARIABLES}",
        "0 applied, 2 configuration (also: a deploy freeze), 3 tool, 4 registry (including: the digest is "
        "not there), 5 cluster, 6 source failed, 7 consumer failed (also: during a wave's soak), "
        "8 timed out, 9 superseded",
        tools=("oras", "kubectl"),
    ),
    CommandSpec(
        "status",
        "Show every source following the repository and every consumer reading them, as they are now.",
        f"FLUX_CI_REPOSITORY, FLUX_CI_DIGEST, {_CLUSTER_VARIABLES}",
        "0 shown, 2 configuration, 3 tool, 5 cluster",
        tools=("kubectl",),
        changes=False,
    ),
    CommandSpec(
        "history",
        "Show what each consumer applied before, newest first (its own status.history), with the tags "
        "pointing at each digest now and who pushed it. Read-only.",
        f"FLUX_CI_HISTORY, FLUX_CI_REPOSITORY, FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS, {_CLUSTER_VARIABLES}, "
        f"{_REGISTRY_VARIABLES}",
        "0 shown (a registry that could not be asked is a note), 2 configuration, 3 tool, 5 cluster",
        tools=("kubectl", "oras"),
        changes=False,
    ),
    CommandSpec(
        "diff",
        "Show what applying FLUX_CI_PATH would change, per Kustomization reading the sources (a dry run).",
        f"FLUX_CI_PATH, FLUX_CI_REPOSITORY, FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS, {_CLUSTER_VARIABLES}, "
        "FLUX_CI_WAIT_FOR",
        "0 diff computed (changed or not: see FLUX_CI_CHANGED), 2 configuration, 3 tool, 5 cluster, "
        "8 timed out",
        tools=("flux", "kubectl"),
        changes=False,
    ),
    CommandSpec(
        "doctor",
        "Preflight: tools, configuration, registry credentials, cluster access and OCIRepository setup.",
        f"{_PUSH_VARIABLES}, {_DEPLOY_VARIABLES}, {_REGISTRY_VARIABLES}, {_NOTIFY_VARIABLES}",
        "0 all checks passed, else the first failed check's: 2 configuration, 3 tool, 4 registry, 5 cluster",
        changes=False,
    ),
)


VALUE_OPTIONS = frozenset({"-o", "--output", "--timeout"})  # the global options that take a value


def command_in(args: Sequence[str]) -> str:
    """The command word given (known or not), skipping the global options and their values."""
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg in VALUE_OPTIONS:
            skip_value = True
        elif not arg.startswith("-"):
            return arg
    return ""


def spec_in(args: Sequence[str]) -> CommandSpec | None:
    """The spec of the command args name, if they name a known one."""
    name = command_in(args)
    return next((spec for spec in COMMANDS if spec.name == name), None)


def work_of(name: str) -> Work:
    """The function that does a command's work, imported now: only the command that runs loads it.
    The imports are local so that start-up stays lean, and plain so that readers and mypy follow them."""
    works: dict[str, Work]
    if name in ("push", "deploy", "promote"):
        from flux_ci.commands import deploy  # noqa: PLC0415

        works = {"push": deploy.run_push, "deploy": deploy.run_deploy, "promote": deploy.run_promote}
    elif name in ("reconcile", "wait"):
        from flux_ci.commands import reconcile  # noqa: PLC0415

        works = {"reconcile": reconcile.run_reconcile, "wait": reconcile.run_wait}
    elif name == "status":
        from flux_ci.commands import status  # noqa: PLC0415

        works = {"status": status.run_status}
    elif name == "history":
        from flux_ci.commands import history  # noqa: PLC0415

        works = {"history": history.run_history}
    elif name == "diff":
        from flux_ci.commands import diff  # noqa: PLC0415

        works = {"diff": diff.run_diff}
    else:
        from flux_ci.commands import doctor  # noqa: PLC0415

        works = {"doctor": doctor.run_doctor}
    return works[name]
