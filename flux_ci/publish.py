"""Publishing the artifact: package FLUX_CI_PATH, push it with `flux push artifact`, then tag that
exact digest with the moving tags (`oras tag`), all with the private registry login.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flux_ci.context import Context
from flux_ci.credentials import RegistryAuth, registry_login
from flux_ci.errors import ConfigError, RegistryError
from flux_ci.models import Artifact, Report
from flux_ci.settings import Settings, config_message, missing_message
from flux_ci.tools import flux, oras

_TAG_TIMEOUT_S = 120.0


def pushed_tags(settings: Settings) -> list[str]:
    """The immutable tag first, then the moving ones, without repeats."""
    tags = [settings.tag] if settings.tag else []
    return list(dict.fromkeys([*tags, *settings.extra_tags]))


@dataclass(frozen=True)
class PushPlan:
    """What a push needs, all present."""

    repository: str
    tag: str
    source: str
    revision: str
    tags: tuple[str, ...]


def check_push_config(settings: Settings) -> PushPlan:
    """One error naming every variable a push needs and lacks (or has wrong)."""
    problems = [
        missing_message(name)
        for name in ("repository", "tag", "source", "revision")
        if getattr(settings, name) is None
    ]
    path = settings.path
    if not path.exists():
        problems.append(f"FLUX_CI_PATH: {str(path)!r} does not exist")
    elif path.is_dir() and not any(item.is_file() for item in path.rglob("*")):
        problems.append(f"FLUX_CI_PATH: {str(path)!r} is an empty directory")
    if problems or not (settings.repository and settings.tag and settings.source and settings.revision):
        raise ConfigError(config_message(problems))
    tags = tuple(pushed_tags(settings))
    return PushPlan(settings.repository, settings.tag, settings.source, settings.revision, tags)


def push(ctx: Context, report: Report) -> Artifact:
    """Package FLUX_CI_PATH, push it as repository:tag, then add the extra tags to that digest."""
    plan = check_push_config(ctx.settings)
    with registry_login(ctx) as auth:
        url = f"{plan.repository}:{plan.tag}"
        with ctx.progress.step("push", url):
            digest = _push(ctx, auth, url, plan)
        report.artifact = Artifact(plan.repository, plan.tags, digest, plan.source, plan.revision)
        if len(plan.tags) > 1:
            with ctx.progress.step("tag", ", ".join(plan.tags[1:])):
                _tag(ctx, auth, plan.repository, digest, plan.tags[1:])
        else:
            ctx.progress.skip("tag", "FLUX_CI_EXTRA_TAGS is none")
    return report.artifact


def _push(ctx: Context, auth: RegistryAuth, url: str, plan: PushPlan) -> str:
    s = ctx.settings
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
    result = ctx.runner.run(argv, timeout=ctx.timeout(), env=auth.flux_env(), mutating=True)
    if result.dry_run:
        return s.digest or ""
    if not result.ok:
        raise flux.push_failure(result.stderr)
    pushed = flux.parse_push_output(result.stdout)
    ctx.progress.note(f"pushed {pushed.digest}")
    return pushed.digest


def _tag(ctx: Context, auth: RegistryAuth, repository: str, digest: str, tags: Sequence[str]) -> None:
    reference = f"{repository.removeprefix('oci://')}@{digest or 'sha256:<digest>'}"
    argv = oras.tag_argv(reference, tags, auth.registry_config, plain_http=auth.plain_http)
    result = ctx.runner.run(argv, timeout=ctx.timeout(_TAG_TIMEOUT_S), mutating=True)
    if result.dry_run:
        return
    if not result.ok:
        raise oras.failure("tagging", result.stderr)
    missing = set(tags) - set(oras.parse_tagged(result.stdout))
    if missing:
        raise RegistryError(f"oras tag did not confirm the tags: {', '.join(sorted(missing))}")
