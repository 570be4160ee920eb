"""Publishing the artifact: package FLUX_CI_PATH, push it with `flux push artifact`, then point the
moving tags at that exact digest (`oras tag`), all through the command's one registry login.
"""

from __future__ import annotations

from flux_ci.context import Context
from flux_ci.models import Artifact
from flux_ci.plan import push_plan
from flux_ci.registry import Registry
from flux_ci.settings import Settings
from flux_ci.tools import flux


def pushed_tags(settings: Settings) -> list[str]:
    """The immutable tag first, then the moving ones, without repeats."""
    tags = [settings.tag] if settings.tag else []
    return list(dict.fromkeys([*tags, *settings.extra_tags]))


def push(ctx: Context, registry: Registry) -> Artifact:
    """Package FLUX_CI_PATH, push it as repository:tag, then add the extra tags to that digest."""
    plan = push_plan(ctx.settings)
    s = ctx.settings
    url = f"{plan.repository}:{plan.tag}"
    with ctx.progress.step("push", url):
        argv = flux.push_argv(
            url,
            path=s.path,
            source=plan.source,
            revision=plan.revision,
            reproducible=s.reproducible,
            insecure=s.insecure_registry,
            ignore_paths=s.ignore_paths,
            timeout_s=ctx.timeout(),
        )
        digest = registry.push(argv)
        ctx.progress.note(f"pushed {digest}")
    artifact = Artifact(plan.repository, plan.tags, digest, plan.source, plan.revision)
    if len(plan.tags) > 1:
        with ctx.progress.step("tag", ", ".join(plan.tags[1:])):
            registry.tag(plan.repository, digest, plan.tags[1:])
    else:
        ctx.progress.skip("tag", "FLUX_CI_EXTRA_TAGS is none")
    return artifact
