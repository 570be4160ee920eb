"""`flux-ci doctor`: every preflight check, each reported even when an earlier one failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from flux_ci.config import plan
from flux_ci.context import Context
from flux_ci.errors import FluxCIError
from flux_ci.kube.discovery import discover
from flux_ci.kube.fluxobjects import followed_ref, ref_of
from flux_ci.registry.credentials import registry_login
from flux_ci.report.models import Check, Report
from flux_ci.tools.toolcheck import started, tool_version


def run_doctor(ctx: Context, report: Report) -> None:
    """Run all checks; raise the first failure (its exit code is the command's) after recording all."""
    failures: list[FluxCIError] = []

    def check(name: str, probe: Callable[[], str]) -> bool:
        try:
            detail = probe()
        except FluxCIError as exc:
            failures.append(exc)
            report.checks.append(Check(name, ok=False, detail=exc.message))
            return False
        report.checks.append(Check(name, ok=True, detail=detail))
        return True

    tools = ("flux", "oras", "kubectl")
    checks = started(ctx.runner, ctx.prefetched, tools)
    for tool in tools:
        check(f"{tool} installed", partial(tool_version, ctx.runner, tool, checks[tool]))
    configured = check("configuration", lambda: _configuration(ctx))
    if configured:
        check("registry login", lambda: _registry(ctx))
        contexts = ctx.settings.kube_contexts
        for context in contexts:  # every cluster a deploy would reach (FLUX_CI_KUBE_CONTEXT=a,b)
            name = "cluster and sources" + (f" ({context})" if len(contexts) > 1 else "")
            check(name, partial(_sources, replace(ctx, settings=ctx.settings.for_cluster(context))))
    if failures:
        raise failures[0]


def _configuration(ctx: Context) -> str:
    plan.check(ctx.settings, "deploy")  # what a deploy needs: doctor is its preflight
    return f"{ctx.settings.repository}:{ctx.settings.tag} from {ctx.settings.path}"


def _registry(ctx: Context) -> str:
    if ctx.settings.registry_user is None and ctx.settings.registry_password is None:
        return "no credentials configured: pushing anonymously or with the user's Docker config"
    with registry_login(ctx):
        return f"logged in as {ctx.settings.registry_user}"


def _sources(ctx: Context) -> str:
    if not ctx.settings.verify:
        return "not checked: FLUX_CI_VERIFY=false, the deploy neither reads nor changes the cluster"
    # The same checks as a deploy's: `patch` only where flux-ci itself writes the annotation.
    needs_patch = ctx.settings.notify_mode == "annotate"
    found = discover(ctx, tags=plan.pushed_tags(ctx.settings), digest=None, needs_patch=needs_patch)
    described = (f"{ref_of(obj)} follows {' '.join(followed_ref(obj))}" for obj in found.sources)
    return "; ".join(described)
