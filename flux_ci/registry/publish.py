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

from flux_ci.config.plan import push_plan
from flux_ci.context import Context
from flux_ci.registry import sign
from flux_ci.registry.client import Registry
from flux_ci.report.models import Artifact
from flux_ci.tools import flux


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A private copy of FLUX_CI_PATH for `flux push artifact --path`.

    flux writes its layer file next to --path (fluxcd/pkg oci `build.go`:
    `os.CreateTemp(filepath.Split(path))`, i.e. `<parent>/<base><digits>`), so a push from a checkout
    the job's user cannot write to fails with `error creating layer: ... permission denied`. The
    copy lives in a 0700 temp dir of this process. The digest does not change: flux archives paths
    relative to --path, zeroes the times and applies --ignore-paths to the copy as to the original.
    """
    with tempfile.TemporaryDirectory(prefix="flux-ci-push-") as private:
        source = path.resolve()
        target = Path(private) / (source.name or "content")
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        yield target


def push(ctx: Context, registry: Registry) -> Artifact:
    """Package FLUX_CI_PATH, push it as repository:tag, then add the extra tags to that digest."""
    plan = push_plan(ctx.settings)
    s = ctx.settings
    url = f"{plan.repository}:{plan.tag}"
    # A dry run copies nothing and shows the real path in the command it would run.
    content: AbstractContextManager[Path] = nullcontext(s.path) if ctx.runner.dry_run else staged(s.path)
    if sign.enabled(s):  # a missing cosign is found before the push, not after it
        sign.preflight(ctx)
    with ctx.progress.step("push", url), content as path:
        argv = flux.push_argv(
            url,
            path=path,
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
    if sign.enabled(s):  # before the moving tags: they never name an unsigned digest
        sign.sign(ctx, registry, plan.repository, digest)
    if len(plan.tags) > 1:
        with ctx.progress.step("tag", ", ".join(plan.tags[1:])):
            registry.tag(plan.repository, digest, plan.tags[1:])
    else:
        ctx.progress.skip("tag", "FLUX_CI_EXTRA_TAGS is none")
    return artifact
