"""What the registry knows of digests a cluster ran (for `history`): whether it still holds each, who
pushed it (its annotations), and which tags point at it now. Read-only, and bounded.

The registry cannot say which tags name a digest: a tag is resolved one at a time. So the tags are
listed once per repository, and at most `TAG_LIMIT` of them resolved, a few at once: all of them in
a repository that has no more, else the ones that can name these digests: the tags the sources
follow, FLUX_CI_TAG and FLUX_CI_EXTRA_TAGS, and flux-ci's default immutable tags (a commit SHA's
first characters) of the digests' commits. A manifest costs one request per digest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from flux_ci.config.ci import provenance
from flux_ci.context import Context
from flux_ci.errors import RegistryError
from flux_ci.registry.client import Registry
from flux_ci.report.models import Provenance

T = TypeVar("T")
R = TypeVar("R")

TAG_LIMIT = 64  # tags resolved per repository, at most
CONCURRENCY = 8  # registry requests at once
_SHORT_SHA = 7  # the shortest commit prefix taken for a tag


@dataclass
class Known:
    """What the registry said of one repository's digests."""

    annotations: dict[str, dict[str, str] | None] = field(default_factory=dict)  # None: gone
    tags: dict[str, list[str]] = field(default_factory=dict)  # digest -> tags pointing at it now
    problems: list[str] = field(default_factory=list)  # what could not be asked, for the notes

    def holds(self, digest: str) -> bool | None:
        if digest not in self.annotations:
            return None
        return self.annotations[digest] is not None

    def pushed_by(self, digest: str) -> Provenance:
        return provenance(self.annotations.get(digest) or {})


def known(
    ctx: Context,
    registry: Registry,
    repository: str,
    digests: Collection[str],
    *,
    named_tags: Iterable[str],
    commits: Iterable[str] = (),
) -> Known:
    """Ask the registry about `digests` of `repository`. `named_tags`: tags that may point at them
    (followed, pushed, moved); `commits`: their commit SHAs, whose prefixes flux-ci tags by default.
    A registry error is recorded in `problems`; what was learned before it stays."""
    found = Known()
    try:
        answers = _each(ctx, sorted(digests), lambda digest: registry.annotations(repository, digest))
        found.annotations = dict(zip(sorted(digests), answers, strict=True))
        everything = registry.tags(repository)
    except RegistryError as exc:
        found.problems.append(exc.message)
        return found
    shas = set(commits) | {provenance(a).revision for a in found.annotations.values() if a}
    chosen = tags_to_resolve(everything, named_tags, shas)
    if len(chosen) < len(everything):
        found.problems.append(
            f"{repository} has {len(everything)} tags: checked only {len(chosen)} (the followed, moving "
            "and commit tags); others may name these digests too"
        )
    try:
        pointing = _each(ctx, chosen, lambda tag: registry.lookup(repository, tag))
    except RegistryError as exc:
        found.problems.append(exc.message)
        return found
    for tag, digest in zip(chosen, pointing, strict=True):
        if digest is not None and digest in digests:
            found.tags.setdefault(digest, []).append(tag)
    return found


def tags_to_resolve(everything: Sequence[str], named: Iterable[str], commits: Iterable[str]) -> list[str]:
    """Every tag of a small repository; else the named ones and the commit prefixes, that exist."""
    if len(everything) <= TAG_LIMIT:
        return list(everything)
    shas = [sha.rpartition(":")[2] for sha in commits if sha]  # `main@sha1:<hex>` or a bare SHA
    wanted = set(named)
    chosen = [
        tag
        for tag in everything
        if tag in wanted or (len(tag) >= _SHORT_SHA and any(sha.startswith(tag) for sha in shas))
    ]
    return chosen[:TAG_LIMIT]


def _each(ctx: Context, items: Sequence[T], ask: Callable[[T], R]) -> list[R]:
    """`ask` for every item, a few at once, in the items' order; the first error is raised."""
    if len(items) <= 1:
        return [ask(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(items)), thread_name_prefix="registry")
    try:
        futures = [pool.submit(ask, item) for item in items]
        return [ctx.result(future) for future in futures]
    finally:
        # Never wait for threads whose children a signal is stopping (the boundary stops them all).
        pool.shutdown(wait=False, cancel_futures=True)
