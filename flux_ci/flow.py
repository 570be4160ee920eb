"""The commands' work: push → reconcile → wait, under one deadline, filling one `Report`.

Nothing here prints except through `ctx.progress`; nothing here decides an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flux_ci import fluxobjects as fo
from flux_ci.consumers import find_consumers, read_consumers, wait_consumers
from flux_ci.consumers import preflight as consumers_preflight
from flux_ci.context import Context
from flux_ci.credentials import RegistryAuth, registry_login
from flux_ci.errors import ConfigError, RegistryError
from flux_ci.fluxobjects import Obj
from flux_ci.models import Artifact, Report, Status
from flux_ci.settings import Settings, config_message, missing_message
from flux_ci.sources import find_sources, preflight, read_sources, sync_sources
from flux_ci.toolcheck import require_tools
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


def expected_artifact(ctx: Context) -> Artifact:
    """For reconcile/wait without a push in this run: the digest comes from FLUX_CI_DIGEST."""
    s = ctx.settings
    return Artifact(
        s.repository or "",
        tuple(pushed_tags(s) if s.tag else []),
        s.required("digest"),
        s.source or "",
        s.revision or "",
    )


def discover(ctx: Context, report: Report, *, tags: Sequence[str]) -> list[Obj]:
    """Find the sources and refuse setups that can never work, before anything is pushed."""
    require_tools(ctx, ["kubectl"])
    _require_source_config(ctx.settings)
    with ctx.progress.step("discover", ctx.settings.repository or ctx.settings.ocirepository or ""):
        sources = find_sources(ctx)
        report.sources = read_sources(sources)
        preflight(sources, tags=tags, digest=None)
        for obj in sources:
            kind, value = fo.followed_ref(obj)
            ctx.progress.note(f"{fo.ref_of(obj)} follows {kind} {value}")
    return sources


def reconcile(ctx: Context, report: Report, artifact: Artifact, sources: list[Obj]) -> None:
    with ctx.progress.step("reconcile", artifact.digest):
        preflight(sources, tags=artifact.tags, digest=artifact.digest)
        sync_sources(ctx, sources, artifact.digest, report)


def wait(ctx: Context, report: Report, artifact: Artifact, sources: list[Obj]) -> None:
    with ctx.progress.step("wait", artifact.digest):
        consumers = find_consumers(ctx, [fo.ref_of(obj) for obj in sources])
        report.consumers = read_consumers(consumers)
        consumers_preflight(consumers)
        if not consumers:
            ctx.progress.note("no Kustomization or HelmRelease reads these sources: nothing to wait for")
        wait_consumers(ctx, consumers, artifact.digest, artifact.revision or None, report)


def run_push(ctx: Context, report: Report) -> None:
    check_push_config(ctx.settings)  # configuration first: it is the cheapest thing to fix
    require_tools(ctx, ["flux", "oras"])
    push(ctx, report)
    _finish(ctx, report)


def run_reconcile(ctx: Context, report: Report) -> None:
    artifact = expected_artifact(ctx)
    report.artifact = artifact
    sources = discover(ctx, report, tags=artifact.tags)
    reconcile(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_wait(ctx: Context, report: Report) -> None:
    artifact = expected_artifact(ctx)
    report.artifact = artifact
    sources = discover(ctx, report, tags=artifact.tags) if _has_source_config(ctx.settings) else []
    wait(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_deploy(ctx: Context, report: Report) -> None:
    """push → reconcile → wait; the cluster is checked first so a hopeless deploy pushes nothing."""
    check_push_config(ctx.settings)
    require_tools(ctx, ["flux", "oras"])
    sources = discover(ctx, report, tags=pushed_tags(ctx.settings))
    artifact = push(ctx, report)
    reconcile(ctx, report, artifact, sources)
    wait(ctx, report, artifact, sources)
    _finish(ctx, report)


def run_status(ctx: Context, report: Report) -> None:
    """Every source following the repository and every consumer reading them, as they are now."""
    require_tools(ctx, ["kubectl"])
    _require_source_config(ctx.settings)
    sources = find_sources(ctx)
    report.sources = read_sources(sources)
    report.consumers = read_consumers(find_consumers(ctx, [fo.ref_of(obj) for obj in sources]))
    if ctx.settings.digest:
        report.artifact = expected_artifact(ctx)


def _require_source_config(settings: Settings) -> None:
    if settings.ocirepository is None:
        settings.require("repository")


def _has_source_config(settings: Settings) -> bool:
    return settings.repository is not None or settings.ocirepository is not None or settings.wait_for is None


def _finish(ctx: Context, report: Report) -> None:
    if ctx.runner.dry_run:
        report.status = Status.DRY_RUN
