"""`history`: what each consumer applied, newest first, from its own `status.history`, each entry
joined with what the registry knows of its digest: the tags pointing at it now, and who pushed it.

Read-only: lists and permission checks in every cluster at once (as `status`), then reads in the
registry, a bounded number (`registry.provenance`). A registry that cannot be asked leaves the
cluster's own record whole, and is said in the notes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from flux_ci.context import Context
from flux_ci.delivery import fleet
from flux_ci.delivery.prepare import record_found
from flux_ci.errors import RegistryError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.discovery import Found, discover
from flux_ci.kube.history import history_of
from flux_ci.registry.client import open_registry
from flux_ci.registry.provenance import Known, known
from flux_ci.report.models import HistoryEntry, Report
from flux_ci.tools.toolcheck import require_tools


def run_history(ctx: Context, report: Report) -> None:
    require_tools(ctx.runner, ctx.prefetched, ["kubectl", "oras"])
    clusters = fleet.clusters_of(ctx, report)
    found: dict[str, Found] = {}

    def survey(cluster: fleet.Cluster) -> None:
        found[cluster.name] = discover(cluster.ctx, tags=(), digest=None, needs_patch=False, survey=True)
        record_found(cluster.report, found[cluster.name])
        cluster.finished = True

    try:
        fleet.each(ctx, clusters, survey)
    finally:
        fleet.merge(report, clusters)
    several = fleet.several(ctx)
    entries = [
        (replace(entry, cluster=cluster.name if several else ""), _repository(ctx, found[cluster.name], obj))
        for cluster in clusters
        for obj in found[cluster.name].consumers
        for entry in history_of(obj, ctx.settings.history)
    ]
    report.history = _joined(ctx, report, entries, [obj for f in found.values() for obj in f.sources])


def _repository(ctx: Context, found: Found, consumer: fo.Obj) -> str:
    """The repository a consumer's entries came from: its source's spec.url."""
    source = fo.consumer_source(consumer)
    urls = {fo.ref_of(obj): fo.source_url(obj) for obj in found.sources}
    url = urls.get(source, "") if source else ""
    return url or ctx.settings.repository or ""


def _joined(
    ctx: Context, report: Report, entries: list[tuple[HistoryEntry, str]], sources: list[fo.Obj]
) -> list[HistoryEntry]:
    """Each entry with the tags pointing at its digest now and who pushed it."""
    wanted: dict[str, set[str]] = defaultdict(set)
    commits: dict[str, set[str]] = defaultdict(set)
    for entry, repository in entries:
        if repository and entry.digest:
            wanted[repository].add(entry.digest)
            commits[repository].add(entry.origin_revision)
    if not wanted:
        return [entry for entry, _ in entries]
    learned: dict[str, Known] = {}
    with ctx.progress.step("registry", ", ".join(sorted(wanted))):
        try:
            with open_registry(ctx) as registry:
                for repository, digests in sorted(wanted.items()):
                    named = _named_tags(ctx, sources, repository)
                    learned[repository] = known(
                        ctx, registry, repository, digests, named_tags=named, commits=commits[repository]
                    )
        except RegistryError as exc:
            report.notes.append(f"registry: not asked: {exc.message}")
    for answers in learned.values():
        report.notes += [f"registry: {problem}" for problem in answers.problems]
    return [_with(entry, learned.get(repository)) for entry, repository in entries]


def _named_tags(ctx: Context, sources: list[fo.Obj], repository: str) -> set[str]:
    """The tags that may name a repository's digests: the ones its sources follow, and this
    configuration's own (FLUX_CI_TAG, FLUX_CI_EXTRA_TAGS)."""
    refs = [fo.followed_ref(obj) for obj in sources if fo.source_url(obj) == repository]
    s = ctx.settings
    return {value for kind, value in refs if kind == "tag"} | {*s.extra_tags, *([s.tag] if s.tag else [])}


def _with(entry: HistoryEntry, answers: Known | None) -> HistoryEntry:
    if answers is None or not entry.digest:
        return entry
    return replace(
        entry,
        tags=tuple(sorted(answers.tags.get(entry.digest, []))),
        pushed_by=answers.pushed_by(entry.digest),
        in_registry=answers.holds(entry.digest),
    )
