"""Publishing the artifact: package FLUX_CI_PATH, push it with `flux push artifact`, then point the
moving tags at that exact digest (`oras tag`), all through the command's one registry login. With
FLUX_CI_SIGN the digest is signed (`cosign sign`) between the push and the tags.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from flux_ci.config.ci import trace_annotations
from flux_ci.config.manifests import Scan
from flux_ci.config.plan import push_plan
from flux_ci.context import Context
from flux_ci.registry import sign
from flux_ci.registry.client import Registry
from flux_ci.report.models import Artifact
from flux_ci.tools import flux


@contextmanager
def staged(manifests: Scan) -> Iterator[Path]:
    """A private copy of exactly what the artifact holds (`manifests`, as checked), for
    `flux push artifact --path`: symlinks already resolved, ignored files left out.

    Private because flux writes its layer file next to --path (fluxcd/pkg oci `build.go`:
    `os.CreateTemp(filepath.Split(path))`), so a push from a checkout the job's user cannot write to
    would fail. The copy lives in a 0700 temp dir of this process. Without symlinks the digest is the
    one flux gives the original: flux archives paths relative to --path with their modes, zeroes the
    times, and applies the same --ignore-paths to the copy (which holds nothing they leave out, but
    the directories holding re-included files).
    """
    with tempfile.TemporaryDirectory(prefix="flux-ci-push-") as private:
        root = Path(private) / (manifests.root.name or "content")
        if manifests.single_file:
            shutil.copy2(manifests.entries[0].source, root)
            yield root
            return
        root.mkdir()
        shutil.copystat(manifests.root.resolve(), root)
        for entry in manifests.entries:
            target = root / entry.relative
            if entry.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copystat(entry.source, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry.source, target)
        yield root


def push(ctx: Context, registry: Registry) -> Artifact:
    """Package FLUX_CI_PATH, push it as repository:tag, then add the extra tags to that digest."""
    plan = push_plan(ctx.settings, ctx.manifests)
    s = ctx.settings
    url = f"{plan.repository}:{plan.tag}"
    # A dry run copies nothing and shows the real path in the command it would run.
    content: AbstractContextManager[Path] = (
        nullcontext(s.path) if ctx.runner.dry_run else staged(plan.manifests)
    )
    if sign.enabled(s):  # a missing cosign is found before the push, not after it
        sign.preflight(ctx)
    with ctx.progress.step("push", url), content as path:
        ctx.progress.note(_holding(plan.manifests))
        argv = flux.push_argv(
            url,
            path=path,
            source=plan.source,
            revision=plan.revision,
            reproducible=s.reproducible,
            insecure=s.insecure_registry,
            ignore_paths=s.ignore_paths,
            timeout_s=ctx.timeout(),
            annotations=published_annotations(ctx),
        )
        digest = registry.push(argv)
        ctx.progress.note(f"pushed {digest}")
    held = plan.manifests
    artifact = Artifact(
        plan.repository, plan.tags, digest, plan.source, plan.revision, files=held.files, objects=held.objects
    )
    if sign.enabled(s):  # before the moving tags: they never name an unsigned digest
        sign.sign(ctx, registry, plan.repository, digest)
    if len(plan.tags) > 1:
        with ctx.progress.step("tag", ", ".join(plan.tags[1:])):
            registry.tag(plan.repository, digest, plan.tags[1:])
    else:
        ctx.progress.skip("tag", "each wave moves its own tag" if s.waves else "FLUX_CI_EXTRA_TAGS is none")
    return artifact


def published_annotations(ctx: Context) -> dict[str, str]:
    """Who pushes this artifact (FLUX_CI_PIPELINE_URL, FLUX_CI_JOB_URL, FLUX_CI_PIPELINE_USER, and
    GitLab's CI_JOB_STARTED_AT), as io.flux-ci.* annotations. Anyone who may pull reads them, so a value
    that holds any secret the job knows (a token in a URL, a variable's value) is left out, and said."""
    s = ctx.settings
    found = trace_annotations(
        pipeline_url=s.pipeline_url,
        job_url=s.job_url,
        user=s.pipeline_user,
        started_at=s.job_started_at.strftime("%Y-%m-%dT%H:%M:%SZ") if s.job_started_at else None,
    )
    masker = ctx.runner.masker
    kept = {key: value for key, value in found.items() if masker.mask(value) == value}
    for key in sorted(found.keys() - kept.keys()):
        ctx.progress.note(f"annotation {key} left out: its value holds a secret")
    return kept


def _holding(manifests: Scan) -> str:
    links = f"; symlinks resolved: {', '.join(manifests.links)}" if manifests.links else ""
    return f"the artifact holds {manifests.files} file(s), {manifests.objects} Kubernetes object(s){links}"
