"""The commands' work: discover → push → reconcile → wait, under one deadline.

Steps return what they observed; only this module assembles the `Report`. Nothing here prints
except through `ctx.progress`, and nothing here decides an exit code (exceptions do, at the CLI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TypeVar

from flux_ci import fleet, notify
from flux_ci import fluxobjects as fo
from flux_ci.cluster import new_token, request_reconcile
from flux_ci.context import Context
from flux_ci.deadline import Deadline
from flux_ci.discovery import Found, discover
from flux_ci.engine import Observer, Target
from flux_ci.errors import (
    ConfigError,
    ConsumerFailedError,
    DeadlineExceededError,
    FluxCIError,
    RegistryError,
    SignalInterruptError,
    SourceFailedError,
    SupersededError,
)
from flux_ci.fluxobjects import Expectation, Obj, Phase, Verdict
from flux_ci.models import (
    Artifact,
    Change,
    ChangeKind,
    ConsumerState,
    ObjectRef,
    Report,
    Rollback,
    RollbackStatus,
    SourceState,
    Status,
    TagMove,
)
from flux_ci.plan import moving_tags, pushed_tags
from flux_ci.publish import push
from flux_ci.registry import Registry, open_registry
from flux_ci.toolcheck import require_tools
from flux_ci.tools import flux

T = TypeVar("T")


def expected_artifact(ctx: Context) -> Artifact:
    """For reconcile/wait without a push in this run: the digest comes from FLUX_CI_DIGEST."""
    s = ctx.settings
    return Artifact(
        s.repository or "",
        tuple(pushed_tags(s)),
        s.required("digest"),
        s.source or "",
        s.revision or "",
    )


# --- the commands ------------------------------------------------------------------------------


def run_push(ctx: Context, report: Report) -> None:
    require_tools(ctx, ["flux", "oras"])
    with open_registry(ctx) as registry:
        report.artifact = push(ctx, registry)
    _finish(ctx, report)


def run_deploy(ctx: Context, report: Report) -> None:
    """push → reconcile → wait; every cluster is checked first so a hopeless deploy pushes nothing."""
    if not ctx.settings.verify:  # no cluster access at all: push, trigger the Receiver, verify nothing
        run_push(ctx, report)
        if report.artifact is not None:
            notify.trigger_only(ctx, report, report.artifact)
        _finish(ctx, report)
        return
    tools = ["flux", "oras", "kubectl"]
    s = ctx.settings
    with notify.unverified_hint(ctx), _prepared(ctx, report, tools, tags=pushed_tags(s), digest=None) as run:
        recorded = _remember(ctx, run.registry, moving_tags(s))
        artifact = report.artifact = push(ctx, run.registry)
        report.tag_moves = [replace(move, after=artifact.digest) for move in recorded]
        _deliver(ctx, report, run, artifact, recorded)
    _finish(ctx, report)


def run_promote(ctx: Context, report: Report) -> None:
    """Point the moving tags (FLUX_CI_EXTRA_TAGS) at a digest pushed and tested before, then wait
    with the same exactness as deploy. Nothing is packaged, and the immutable tag never changes."""
    s = ctx.settings
    moving = moving_tags(s)
    tools = ["oras", "kubectl"] if s.verify else ["oras"]
    with open_registry(ctx) as registry:
        artifact = report.artifact = _promoted(ctx, registry, moving)
        if not s.verify:
            require_tools(ctx, tools)
            _move_tags(ctx, registry, artifact, moving)
            notify.trigger_only(ctx, report, artifact)
            _finish(ctx, report)
            return
        with _prepared(ctx, report, tools, tags=moving, digest=artifact.digest, registry=registry) as run:
            recorded = _remember(ctx, registry, moving, always=True)
            _move_tags(ctx, registry, artifact, moving)
            report.tag_moves = [replace(move, after=artifact.digest) for move in recorded]
            _deliver(ctx, report, run, artifact, recorded if s.rollback else [])
    _finish(ctx, report)


def run_reconcile(ctx: Context, report: Report) -> None:
    """Ask the sources to fetch FLUX_CI_DIGEST and wait until they have (consumers not waited for)."""
    artifact = report.artifact = expected_artifact(ctx)
    if not ctx.settings.verify:
        notify.trigger_only(ctx, report, artifact)
        _finish(ctx, report)
        return
    tools = ["oras", "kubectl"]
    with _prepared(ctx, report, tools, tags=artifact.tags, digest=artifact.digest, consumers=False) as run:
        run.each(ctx, lambda ready: run.settling(ready, artifact).sources())
    _finish(ctx, report)


def run_wait(ctx: Context, report: Report) -> None:
    """Wait until the sources hold FLUX_CI_DIGEST and their consumers applied it; requests nothing
    from the sources (a re-run after a fix still asks the consumers to try again)."""
    artifact = report.artifact = expected_artifact(ctx)
    tools = ["oras", "kubectl"]
    with _prepared(ctx, report, tools, tags=artifact.tags, digest=artifact.digest, patches=False) as run:
        run.each(ctx, lambda ready: _settle(run.settling(ready, artifact), request_sources=False))
    _finish(ctx, report)


def run_status(ctx: Context, report: Report) -> None:
    """Every source following the repository and every consumer reading them, as they are now."""
    require_tools(ctx, ["kubectl"])
    clusters = fleet.clusters_of(ctx, report)

    def survey(cluster: fleet.Cluster) -> None:
        found = discover(cluster.ctx, tags=(), digest=None, needs_patch=False, survey=True)
        _record_found(cluster.report, found)
        cluster.finished = True

    try:
        fleet.each(ctx, clusters, survey)
    finally:
        fleet.merge(report, clusters)
    if ctx.settings.digest:
        report.artifact = expected_artifact(ctx)


def run_diff(ctx: Context, report: Report) -> None:
    """What applying FLUX_CI_PATH would change, for each Kustomization reading the sources: the real
    `flux diff kustomization` (a server-side dry run). Read-only: nothing is pushed or requested."""
    require_tools(ctx, ["flux", "kubectl"])
    clusters = fleet.clusters_of(ctx, report)
    try:
        fleet.each(ctx, clusters, _diff_cluster)
    finally:
        fleet.merge(report, clusters)


def _diff_cluster(cluster: fleet.Cluster) -> None:
    ctx, report = cluster.ctx, cluster.report
    found = _discover(ctx, report, tags=pushed_tags(ctx.settings), digest=None, needs_patch=False)
    report.changed = False
    for obj in found.consumers:
        ref = fo.ref_of(obj)
        if ref.kind != "Kustomization":
            report.notes.append(f"{ref} not diffed: flux diff covers Kustomizations only")
            continue
        with ctx.progress.step("diff", str(ref)):
            changes = _diff_one(ctx, obj)
        report.changes += changes
        report.changed = report.changed or bool(changes)
        ctx.progress.note(f"{ref}: {len(changes)} object(s) would change" if changes else f"{ref}: no change")
    cluster.finished = True


def _diff_one(ctx: Context, obj: Obj) -> list[Change]:
    """`flux diff kustomization` of one Kustomization against the local directory its spec.path
    names: exit 1 (a change found) is data; any exit above it is an error."""
    ref = fo.ref_of(obj)
    spec = obj.get("spec") or {}
    relative = str(spec.get("path") or "").strip().strip("/").removeprefix("./").strip("/")
    path = ctx.settings.path / relative if relative not in ("", ".") else ctx.settings.path
    if not path.is_dir():
        raise ConfigError(
            f"{ref} applies {spec.get('path')!r} of the artifact, but {str(path)!r} is not a directory "
            "in FLUX_CI_PATH"
        )
    argv = flux.diff_argv(
        ref.name,
        namespace=ref.namespace,
        path=path,
        context=ctx.settings.kube_context,
        timeout_s=ctx.timeout(),
    )
    result = ctx.runner.run(argv, timeout=ctx.timeout())
    if result.exit_code not in (flux.DIFF_UNCHANGED, flux.DIFF_CHANGED):
        raise flux.diff_failure(ref.name, result.stderr or result.stdout)
    return [
        Change(ref, found.object, ChangeKind(found.change), found.diff)
        for found in flux.parse_diff(result.stdout)
    ]


# --- steps -------------------------------------------------------------------------------------


def _patches(ctx: Context) -> bool:
    """Only FLUX_CI_NOTIFY=annotate writes to the cluster (the reconcile annotation)."""
    return ctx.settings.notify_mode == "annotate"


@dataclass(frozen=True)
class _Ready:
    """One cluster, checked and watched: ready for the requests."""

    cluster: fleet.Cluster
    found: Found
    observer: Observer


@dataclass(frozen=True)
class _Prepared:
    registry: Registry
    ready: list[_Ready]

    def settling(self, ready: _Ready, artifact: Artifact) -> _Settling:
        cluster = ready.cluster
        return _Settling(cluster.ctx, cluster.report, ready.found, ready.observer, self.registry, artifact)

    def each(self, ctx: Context, work: Callable[[_Ready], object]) -> None:
        """`work` in every cluster at once (see `fleet.each`); each cluster it ends is finished."""

        def finished(cluster: fleet.Cluster) -> None:
            work(next(ready for ready in self.ready if ready.cluster is cluster))
            cluster.finished = True

        fleet.each(ctx, [ready.cluster for ready in self.ready], finished)


@contextmanager
def _prepared(
    ctx: Context,
    report: Report,
    tools: Sequence[str],
    *,
    tags: Sequence[str],
    digest: str | None,
    consumers: bool = True,
    patches: bool | None = None,
    registry: Registry | None = None,
) -> Iterator[_Prepared]:
    """What every cluster command starts with, done side by side since each takes a round trip:
    the tools' versions, discovery in every cluster (read-only) and the registry login (unless
    given); then the watches. A missing tool is reported first: it explains any other failure.
    Every cluster is checked before anything changes: one that cannot be deployed to stops all."""
    needs_patch = _patches(ctx) if patches is None else patches
    clusters = fleet.clusters_of(ctx, report)

    def find(cluster: fleet.Cluster) -> Found:
        return _discover(cluster.ctx, cluster.report, tags=tags, digest=digest,
                         needs_patch=needs_patch, consumers=consumers)  # fmt: skip

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare")
    try:
        versions = pool.submit(require_tools, ctx, tools)
        finding = pool.submit(fleet.each, ctx, clusters, find)
        with nullcontext(registry) if registry else open_registry(ctx) as logged_in, ExitStack() as watching:
            ctx.result(versions)
            found = ctx.result(finding)
            ready = [
                _Ready(cluster, its, watching.enter_context(_observing(cluster.ctx, cluster.report, its)))
                for cluster, its in zip(clusters, found, strict=True)
            ]
            yield _Prepared(logged_in, ready)
    finally:
        # Never wait here for threads whose children a signal is stopping: the CLI boundary stops
        # every child (SIGKILL after the grace) whatever happens.
        pool.shutdown(wait=False, cancel_futures=True)
        fleet.merge(report, clusters)


def _discover(
    ctx: Context,
    report: Report,
    *,
    tags: Sequence[str],
    digest: str | None,
    needs_patch: bool,
    consumers: bool = True,
) -> Found:
    with ctx.progress.step("discover", ctx.settings.repository or ctx.settings.ocirepository or ""):
        found = discover(ctx, tags=tags, digest=digest, needs_patch=needs_patch, find_consumers=consumers)
        _record_found(report, found)
        for obj in found.sources:
            kind, value = fo.followed_ref(obj)
            ctx.progress.note(f"{fo.ref_of(obj)} follows {kind} {value}")
        for obj in found.consumers:
            ctx.progress.note(f"{fo.ref_of(obj)} reads it")
    return found


def _record_found(report: Report, found: Found) -> None:
    report.sources = [fo.source_state(obj) for obj in found.sources]
    report.consumers = [fo.consumer_state(obj) for obj in found.consumers]
    report.scope = list(found.scope)
    report.notes = [f"left out: {reason}" for reason in found.left_out]


@contextmanager
def _observing(ctx: Context, report: Report, found: Found) -> Iterator[Observer]:
    """Watch every kind/namespace involved from now on; the report shows each object as last seen."""
    observer = Observer(ctx, found.watch_groups()).start([*found.sources, *found.consumers])
    try:
        yield observer
    finally:
        observer.stop()
        sources = [_seen_source(observer, obj) for obj in found.sources]
        consumers = [_seen_consumer(observer, obj) for obj in found.consumers]
        report.sources = _updated(report.sources, sources)
        report.consumers = _updated(report.consumers, consumers)


R = TypeVar("R", SourceState, ConsumerState)


def _updated(rows: list[R], seen: list[R]) -> list[R]:
    """The rows with the objects just seen in their place (a rollback watches only some of them)."""
    latest = {row.ref: row for row in seen}
    kept = [latest.pop(row.ref, row) for row in rows]
    return kept + list(latest.values())


def _last_seen(observer: Observer, obj: Obj) -> tuple[Obj, str]:
    """The object as the watches last saw it, and flux-ci's verdict on it then ("" if not judged)."""
    ref = fo.ref_of(obj)
    verdict = observer.verdicts.get(ref)
    return observer.latest.get(ref, obj), str(verdict.phase) if verdict else ""


def _seen_source(observer: Observer, obj: Obj) -> SourceState:
    return fo.source_state(*_last_seen(observer, obj))


def _seen_consumer(observer: Observer, obj: Obj) -> ConsumerState:
    return fo.consumer_state(*_last_seen(observer, obj))


@dataclass
class _Settling:
    """One run's requests to Flux and what it expects back: sources fetch the digest, then the
    consumers apply it; exactly this digest, Ready, and never a state left from before."""

    ctx: Context
    report: Report
    found: Found
    observer: Observer
    registry: Registry
    artifact: Artifact
    checked_tags: set[tuple[str, str]] = field(default_factory=set)
    # The sources stay judged while the consumers are waited for: a newer push that replaces our
    # artifact on the source before a consumer applied it is seen there first.
    source_targets: list[Target] = field(default_factory=list)
    notifier: notify.Notifier | None = None  # FLUX_CI_NOTIFY receiver or none: asks without patch

    def sources(self, *, request: bool = True) -> dict[ObjectRef, str | None]:
        """Request reconciliation of every source not holding the digest and wait until all do.

        Returns, per source, the token written on it (None: it already held the digest, or
        `request` is off because `wait` only watches).
        """
        digest = self.artifact.digest
        with self.ctx.progress.step("reconcile" if request else "sources", digest):
            wanted = (lambda obj: not _holds(self.observer, obj, digest)) if request else (lambda _obj: False)
            tokens = self._request(self.found.sources, wanted)
            self.source_targets = [
                self._target(
                    obj,
                    tokens=tokens,
                    before=fo.source_revision(obj),
                    verdict=fo.source_verdict,
                    error=SourceFailedError,
                    verb="fetch",
                )
                for obj in self.found.sources
            ]
            self._wait(self.source_targets, f"the sources to fetch {digest}")
        self.report.sources = [_seen_source(self.observer, obj) for obj in self.found.sources]
        return tokens

    def consumers(self, already: set[ObjectRef]) -> None:
        """Wait until every consumer applied the digest and is Ready.

        A re-run (its source already held the digest): the consumer is asked to try again, so a
        failure or success left from before never decides this run.
        """
        if not self.found.consumers:
            self.ctx.progress.skip(
                "wait", "FLUX_CI_WAIT_FOR=none: no Kustomization or HelmRelease is waited for"
            )
            return
        with self.ctx.progress.step("wait", self.artifact.digest):
            tokens = self._request(self.found.consumers, lambda obj: fo.consumer_source(obj) in already)
            targets = [
                self._target(
                    obj,
                    tokens=tokens,
                    before=fo.attempted_revision(obj),
                    verdict=fo.consumer_verdict,
                    error=ConsumerFailedError,
                    verb="apply",
                )
                for obj in self.found.consumers
            ]
            self._wait([*self.source_targets, *targets], f"the consumers to apply {self.artifact.digest}")

    def _request(self, objects: Sequence[Obj], wanted: Callable[[Obj], bool]) -> dict[ObjectRef, str | None]:
        """Ask Flux to reconcile what `wanted` selects, the way FLUX_CI_NOTIFY says; their tokens."""
        if _patches(self.ctx):
            return _request(self.ctx, objects, wanted)
        if self.notifier is None:
            self.notifier = notify.Notifier(self.ctx, self.observer.latest, self.artifact)
        return self.notifier.request(objects, wanted)

    def _target(
        self,
        obj: Obj,
        *,
        tokens: dict[ObjectRef, str | None],
        before: str,
        verdict: Callable[[Obj, Expectation], Verdict],
        error: type[FluxCIError],
        verb: str,
    ) -> Target:
        ref = fo.ref_of(obj)
        expect = Expectation(self.artifact.digest, self.artifact.tags, tokens.get(ref), before)
        digest = self.artifact.digest
        return Target(
            ref,
            lambda seen: verdict(seen, expect),
            lambda failed, message: error(f"{failed} failed to {verb} {digest}: {message}"),
            tokens.get(ref),
        )

    def _wait(self, targets: list[Target], what: str) -> None:
        if not self.ctx.runner.dry_run:  # nothing was pushed or requested: nothing will change
            self.observer.wait(targets, what=what, moved=self.moved)

    def moved(self, ref: ObjectRef, tag: str, digest: str) -> None:
        """`ref` holds another digest of a tag we pushed: superseded, if the tag moved on."""
        if (tag, digest) in self.checked_tags:
            return
        now = self.registry.resolve(self.artifact.repository, tag)
        self.checked_tags.add((tag, digest))
        if now != self.artifact.digest:
            raise SupersededError(
                f"superseded: {ref} holds {tag}@{digest}, and tag {tag!r} now points to {now}, not to "
                f"this run's {self.artifact.digest} (another pipeline pushed after this one). Flux "
                "deploys the newer artifact; this one will not be applied.",
                by_digest=now,
            )


def _deliver(
    ctx: Context, report: Report, run: _Prepared, artifact: Artifact, recorded: Sequence[TagMove]
) -> None:
    """Every cluster fetches and applies the artifact. On exit 7 or 8 with FLUX_CI_ROLLBACK, the
    moving tags go back to where they pointed (and the clusters with them) before the error goes on."""
    try:
        run.each(ctx, lambda ready: _settle(run.settling(ready, artifact)))
    except (ConsumerFailedError, DeadlineExceededError):
        if ctx.settings.rollback and not ctx.runner.dry_run:
            report.rollback = _roll_back(ctx, report, run, artifact, recorded)
        raise


def _remember(
    ctx: Context, registry: Registry, tags: Sequence[str], *, always: bool = False
) -> list[TagMove]:
    """Where the moving tags point before this run moves them: for FLUX_CI_ROLLBACK (and for the
    report of a promotion). Costs one registry request per tag, so only when needed."""
    if not tags or not (always or ctx.settings.rollback):
        return []
    repository = ctx.settings.required("repository")
    from flux_ci import rollback  # noqa: PLC0415 - FLUX_CI_ROLLBACK and promotions only

    with ctx.progress.step("record", ", ".join(tags)):
        moves = rollback.remember(registry, repository, tags)
    for move in moves:
        ctx.progress.note(f"tag {move.tag} points to {move.before or 'nothing'} before this run")
    return moves


def _promoted(ctx: Context, registry: Registry, moving: Sequence[str]) -> Artifact:
    """The artifact to promote: FLUX_CI_DIGEST, else what FLUX_CI_TAG points to; exit 4 if the
    registry does not hold it. The immutable tag is listed when it names the same digest."""
    s = ctx.settings
    repository = s.required("repository")
    with ctx.progress.step("resolve", s.digest or f"{repository}:{s.tag}"):
        tagged = registry.lookup(repository, s.tag) if s.tag else None
        if s.digest is not None:
            if registry.lookup(repository, f"@{s.digest}") is None:
                raise RegistryError(
                    f"the registry does not hold {repository}@{s.digest}: promote points tags at an "
                    "artifact pushed (and tested) before, it never pushes one"
                )
            digest = s.digest
        elif tagged is None:
            raise RegistryError(
                f"{repository}:{s.tag} does not exist: nothing to promote (set FLUX_CI_DIGEST, or "
                "FLUX_CI_TAG to the tag a deploy pushed)"
            )
        else:
            digest = tagged
    immutable = (s.tag,) if s.tag and tagged == digest else ()
    return Artifact(repository, (*immutable, *moving), digest)


def _move_tags(ctx: Context, registry: Registry, artifact: Artifact, moving: Sequence[str]) -> None:
    with ctx.progress.step("promote", f"{', '.join(moving)} -> {artifact.digest}"):
        registry.tag(artifact.repository, artifact.digest, tuple(moving))


def _roll_back(
    ctx: Context, report: Report, run: _Prepared, artifact: Artifact, recorded: Sequence[TagMove]
) -> Rollback:
    """Move the tags back and wait, under a deadline of its own (FLUX_CI_ROLLBACK_TIMEOUT), until
    every cluster applied the earlier artifact again. Never raises a failure of its own: the run's
    exit code stays the original failure's, and the report says how the rollback ended."""
    from flux_ci import rollback  # noqa: PLC0415 - after a failure only

    began = time.monotonic()
    back = replace(ctx, deadline=Deadline(ctx.settings.rollback_timeout), cancelled=threading.Event())
    registry = run.registry.using(back)
    status, to_digest, message = RollbackStatus.FAILED, "", ""
    tags: tuple[str, ...] = ()
    try:
        with back.progress.step("rollback", artifact.digest):
            planned = rollback.plan(registry, artifact, recorded)
            for note in planned.notes:
                back.progress.note(note)
            report.notes += planned.notes
            if not planned.moves:
                status = RollbackStatus.SKIPPED
                message = "; ".join(planned.notes) or "no moving tag to move back (FLUX_CI_EXTRA_TAGS=none)"
            else:
                tags = tuple(move.tag for move in planned.moves)
                to_digest = planned.moves[0].after
                rollback.move_back(registry, artifact.repository, planned.moves)
                for digest, group in rollback.targets(planned.moves).items():
                    _settle_back(back, run, registry, Artifact(artifact.repository, group, digest))
                status = RollbackStatus.ROLLED_BACK
                message = f"{', '.join(tags)} point to {to_digest} again, and it is applied and Ready"
    except SupersededError as exc:
        status, message = RollbackStatus.SUPERSEDED, exc.message
    except SignalInterruptError:
        raise
    except FluxCIError as exc:
        message = f"the rollback failed: {exc.message}"
    back.progress.note(f"rollback {status}: {message}")
    return Rollback(status, artifact.digest, to_digest, tags, message, round(time.monotonic() - began, 3))


def _settle_back(ctx: Context, run: _Prepared, registry: Registry, previous: Artifact) -> None:
    """Every cluster's sources following the moved-back tags fetch the earlier digest, and their
    consumers apply it; the failed run's watches give way to new ones under the rollback's deadline."""

    def back(cluster: fleet.Cluster) -> None:
        ready = next(ready for ready in run.ready if ready.cluster.name == cluster.name)
        found = _following(ready, previous.tags)
        ready.observer.stop()
        if not found.sources:
            return
        with _observing(cluster.ctx, cluster.report, found) as observer:
            settling = _Settling(cluster.ctx, cluster.report, found, observer, registry, previous)
            held = {fo.ref_of(obj) for obj in found.sources if _holds(observer, obj, previous.digest)}
            settling.sources()
            settling.consumers(held)

    clusters = [
        fleet.Cluster(
            ready.cluster.name,
            replace(ready.cluster.ctx, deadline=ctx.deadline, cancelled=threading.Event()),
            ready.cluster.report,
        )
        for ready in run.ready
    ]
    fleet.each(ctx, clusters, back)


def _following(ready: _Ready, tags: Sequence[str]) -> Found:
    """The sources following one of `tags` and their consumers, as the watches last saw them."""
    latest = ready.observer.latest
    sources = [
        latest.get(fo.ref_of(obj), obj) for obj in ready.found.sources if fo.followed_ref(obj)[1] in tags
    ]
    refs = {fo.ref_of(obj) for obj in sources}
    consumers = [
        latest.get(fo.ref_of(obj), obj) for obj in ready.found.consumers if fo.consumer_source(obj) in refs
    ]
    return replace(ready.found, sources=sources, consumers=consumers, prefetched=None)


def _settle(settling: _Settling, *, request_sources: bool = True) -> None:
    """Sources fetch the digest (requested, unless `wait` only watches), then consumers apply it.

    A consumer that failed (exit 7) or was still awaited at the deadline (exit 8) is diagnosed
    before the error goes on: while the watches still run, so kubectl may still be started.
    """
    digest = settling.artifact.digest
    held = {fo.ref_of(obj) for obj in settling.found.sources if _holds(settling.observer, obj, digest)}
    try:
        settling.sources(request=request_sources)
        settling.consumers(held)
    except (ConsumerFailedError, DeadlineExceededError):
        _diagnose(settling)
        raise


def _diagnose(settling: _Settling) -> None:
    """Attach why the judged consumers not done are failing to the report; reading it takes at most
    `diagnostics.GATHER_BUDGET_S` on top of the deadline, and a failure to read it is only a note."""
    from flux_ci import diagnostics  # noqa: PLC0415 - after a failure only: a deploy that succeeds never loads it

    observer = settling.observer
    consumers = [
        observer.latest.get(ref, obj)
        for obj in settling.found.consumers
        if (verdict := observer.verdicts.get(ref := fo.ref_of(obj))) is not None
        and verdict.phase is not Phase.DONE
    ]
    if not consumers:
        return
    started = time.monotonic()
    try:
        settling.report.diagnostics = diagnostics.gather(settling.ctx, consumers, settling.artifact.digest)
    except SignalInterruptError:
        raise
    except Exception as exc:  # the failure being explained matters more
        settling.report.notes.append(f"diagnostics could not be read: {exc}")
        return
    settling.ctx.progress.note(f"diagnostics read in {time.monotonic() - started:.1f}s")


def _holds(observer: Observer, obj: Obj, digest: str) -> bool:
    latest = observer.latest.get(fo.ref_of(obj), obj)
    return fo.revision_has_digest(fo.source_revision(latest), digest)


def _request(
    ctx: Context, objects: Sequence[Obj], wanted: Callable[[Obj], bool]
) -> dict[ObjectRef, str | None]:
    """Annotate the objects `wanted` selects (one call per kind and namespace); their tokens."""
    chosen = [obj for obj in objects if wanted(obj)]
    tokens: dict[ObjectRef, str | None] = {fo.ref_of(obj): None for obj in objects}
    for obj in objects:
        if obj not in chosen and obj.get("kind") == "OCIRepository":
            ctx.progress.note(f"{fo.ref_of(obj)} already holds the digest: not requested again")
    groups: dict[tuple[str, str], list[str]] = {}
    for obj in chosen:
        ref = fo.ref_of(obj)
        groups.setdefault((ref.kind, ref.namespace), []).append(ref.name)
    for (kind, namespace), names in sorted(groups.items()):
        token = new_token()
        request_reconcile(ctx, kind, namespace, names, token)
        for name in names:
            tokens[ObjectRef(kind, namespace, name)] = token
        ctx.progress.note(f"reconcile requested: {kind} {', '.join(names)} in {namespace}")
    return tokens


def _finish(ctx: Context, report: Report) -> None:
    if ctx.runner.dry_run:
        report.status = Status.DRY_RUN
