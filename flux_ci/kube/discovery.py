"""Before anything is pushed: what may we see and do, which sources follow what this run pushes, and
which consumers read them. Setups that can never succeed stop here (exit 2, or 5 for permissions).

Permissions are asked of the API server up front (SelfSubjectAccessReview), so a missing right is
named with its verb, resource and scope instead of surfacing as an obscure failure halfway through,
and a missing `patch` fails before the moving tag moves (Flux would deploy it at its next interval).
Only FLUX_CI_NOTIFY=annotate needs `patch`; a Receiver (`receiver`) or the interval (`none`) do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.errors import ClusterError, ConfigError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.cluster import (
    ForbiddenError,
    NotInstalledError,
    can_i,
    get_object,
    list_kinds,
    list_objects,
)
from flux_ci.kube.fluxobjects import Obj
from flux_ci.report.models import ObjectRef
from flux_ci.tools.kubectl import RESOURCES, AccessCheck

SOURCE_KIND = "OCIRepository"
CONSUMER_KINDS = ("Kustomization", "HelmRelease")
_READ_VERBS = ("list", "watch")


@dataclass
class Found:
    """What discovery saw: our sources, the consumers reading them, and what it could not see."""

    sources: list[Obj] = field(default_factory=list)
    consumers: list[Obj] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # other environments' sources, with why
    scope: list[str] = field(default_factory=list)  # where each kind was searched, for the report
    watchable_everywhere: set[str] = field(default_factory=set)  # kinds we may watch cluster-wide
    prefetched: _Prefetched | None = field(default=None, repr=False, compare=False)

    def watch_groups(self) -> set[tuple[str, str | None]]:
        """One watch per kind that has objects to wait for: across all namespaces where allowed and
        needed, else one per namespace. The number of watches never grows with the objects."""
        namespaces: dict[str, set[str]] = {}
        for obj in [*self.sources, *self.consumers]:
            ref = fo.ref_of(obj)
            namespaces.setdefault(ref.kind, set()).add(ref.namespace)
        groups: set[tuple[str, str | None]] = set()
        for kind, spread in namespaces.items():
            if len(spread) > 1 and kind in self.watchable_everywhere:
                groups.add((kind, None))
            else:
                groups |= {(kind, namespace) for namespace in spread}
        return groups


@dataclass
class _Access:
    """The answers of the permission checks, asked in as few API calls as possible."""

    ctx: Context
    answers: dict[AccessCheck, bool] = field(default_factory=dict)

    def ask(self, checks: Sequence[AccessCheck]) -> None:
        missing = [check for check in checks if check not in self.answers]
        if missing:
            self.answers |= can_i(self.ctx, missing)

    def may(self, verb: str, kind: str, namespace: str = "") -> bool:
        return self.answers.get(AccessCheck(verb, RESOURCES[kind], namespace), False)

    def may_read(self, kind: str, namespace: str = "") -> bool:
        return all(self.may(verb, kind, namespace) for verb in _READ_VERBS)

    def missing_read(self, kind: str, namespace: str = "") -> str:
        verbs = [verb for verb in _READ_VERBS if not self.may(verb, kind, namespace)]
        return str(AccessCheck("/".join(verbs), RESOURCES[kind], namespace))


def read_checks(kinds: Sequence[str], namespaces: Sequence[str]) -> list[AccessCheck]:
    return [
        AccessCheck(verb, RESOURCES[kind], namespace)
        for kind in kinds
        for namespace in ("", *namespaces)
        for verb in _READ_VERBS
    ]


class _Prefetched:
    """Cluster-wide lists started together with the first permission batch, so discovery costs
    one round trip of concurrent calls instead of several in a row. One kubectl call lists every
    kind; if it fails (a kind not installed, or one the identity may not list cluster-wide), each
    kind is listed on its own, all at once, so that each failure is told apart and a list the
    identity may not make is replaced by namespaced ones."""

    def __init__(self, ctx: Context, pool: ThreadPoolExecutor, kinds: Sequence[str]) -> None:
        self._pool = pool
        self._kinds = list(kinds)
        self._together = pool.submit(list_kinds, ctx, kinds) if len(kinds) > 1 else None
        self._alone: dict[str, Future[list[Obj]]] = {}
        if self._together is None:
            self._list_alone(ctx)

    def cluster_wide(self, ctx: Context, kind: str) -> list[Obj]:
        if kind not in self._kinds:
            return list_objects(ctx, kind)
        if self._together is not None and not self._alone:
            try:
                return self._together.result()[kind]
            except ClusterError:
                self._list_alone(ctx)
        return self._alone[kind].result()

    def _list_alone(self, ctx: Context) -> None:
        self._alone = {kind: self._pool.submit(list_objects, ctx, kind) for kind in self._kinds}


def discover(
    ctx: Context,
    *,
    tags: Sequence[str],
    digest: str | None,
    needs_patch: bool,
    find_consumers: bool = True,
    survey: bool = False,
) -> Found:
    with ThreadPoolExecutor(max_workers=len(CONSUMER_KINDS) + 2, thread_name_prefix="discover") as pool:
        return _discover(ctx, pool, tags=tags, digest=digest, needs_patch=needs_patch,
                         find_consumers=find_consumers, survey=survey)  # fmt: skip


def _discover(
    ctx: Context,
    pool: ThreadPoolExecutor,
    *,
    tags: Sequence[str],
    digest: str | None,
    needs_patch: bool,
    find_consumers: bool,
    survey: bool,
) -> Found:
    """Find our sources and their consumers, checking every permission the command will use.

    `needs_patch`: the command requests reconciliation through the annotation
    (FLUX_CI_NOTIFY=annotate), so `patch` on the sources (and on the consumers, for re-runs) must
    be allowed. `survey` (status): report every source following the repository and refuse nothing.
    """
    settings = ctx.settings
    access = _Access(ctx)
    home = settings.namespace
    named_source = settings.ocirepository_ref()
    named_consumers = settings.wait_for_refs()
    namespaces = sorted({home, *(r.namespace for r in [named_source, *(named_consumers or [])] if r)})
    listed = [SOURCE_KIND] if named_source is None else []
    listed += list(CONSUMER_KINDS) if find_consumers and named_consumers is None else []
    prefetched = _Prefetched(ctx, pool, listed)
    first = read_checks([SOURCE_KIND, *CONSUMER_KINDS], namespaces)
    if needs_patch:  # usually the sources live in FLUX_CI_NAMESPACE: ask now, in the same batch
        first += [AccessCheck("patch", RESOURCES[SOURCE_KIND], ns) for ns in namespaces]
    access.ask(first)
    found = Found(prefetched=prefetched)
    candidates = _find_sources(ctx, access, found, named_source)
    found.sources = candidates if survey else _classify(ctx, candidates, found, tags=tags, digest=digest)
    source_namespaces = sorted({fo.ref_of(obj).namespace for obj in found.sources})
    later = read_checks(CONSUMER_KINDS, source_namespaces) if find_consumers else []
    if needs_patch:
        later += [AccessCheck("patch", RESOURCES[SOURCE_KIND], ns) for ns in source_namespaces]
    access.ask(later)
    if needs_patch:
        _require_patch(access, source_namespaces)
    if find_consumers:
        _find_consumers(ctx, access, found, named_consumers, source_namespaces, strict=not survey)
    return found


def _require_patch(access: _Access, namespaces: Sequence[str]) -> None:
    denied = [ns for ns in namespaces if not access.may("patch", SOURCE_KIND, ns)]
    if denied:
        checks = ", ".join(str(AccessCheck("patch", RESOURCES[SOURCE_KIND], ns)) for ns in denied)
        raise ClusterError(
            f"the Kubernetes identity may not {checks}: with FLUX_CI_NOTIFY=annotate (the default) "
            "flux-ci asks Flux to reconcile through the reconcile.fluxcd.io/requestedAt annotation. "
            "Nothing was pushed. Grant `patch` (the Role in the README's RBAC section), or tell Flux "
            "without it: FLUX_CI_NOTIFY=receiver through a Receiver webhook (FLUX_CI_RECEIVER_URL, "
            "FLUX_CI_RECEIVER, FLUX_CI_RECEIVER_TOKEN), or FLUX_CI_NOTIFY=none to wait for the "
            "source's own interval"
        )


# --- sources -----------------------------------------------------------------------------------


def _find_sources(ctx: Context, access: _Access, found: Found, named: ObjectRef | None) -> list[Obj]:
    """FLUX_CI_OCIREPOSITORY if set, else every OCIRepository whose spec.url is the repository."""
    repository = ctx.settings.repository
    if named is not None:
        obj = get_object(ctx, named)
        if repository and fo.source_url(obj) != repository:
            raise ConfigError(
                f"{named} follows {fo.source_url(obj)}, not {repository} (FLUX_CI_OCIREPOSITORY, "
                "FLUX_CI_REPOSITORY): it would never fetch the pushed artifact"
            )
        found.scope.append(f"OCIRepository: {named} (named in FLUX_CI_OCIREPOSITORY)")
        return [obj]
    everything, where = _list_visible(ctx, access, found, SOURCE_KIND, [ctx.settings.namespace])
    matching = [obj for obj in everything if fo.source_url(obj) == repository]
    if not matching:
        seen = sorted({fo.source_url(obj) for obj in everything})
        hint = f"; the OCIRepositories it can see follow: {', '.join(seen)}" if seen else ""
        hidden = where != "all namespaces"
        message = (
            f"no OCIRepository in {where} follows {repository}{hint}. Create one with spec.url: "
            f"{repository}, or name it in FLUX_CI_OCIREPOSITORY"
        )
        if hidden:
            raise ClusterError(f"{message} (listing OCIRepositories {access.missing_read(SOURCE_KIND)})")
        raise ConfigError(message)
    return sorted(matching, key=fo.ref_of)


def _list_visible(
    ctx: Context, access: _Access, found: Found, kind: str, namespaces: Sequence[str]
) -> tuple[list[Obj], str]:
    """Every object of `kind` the identity may see: all namespaces, or else each namespace allowed.

    Returns the objects and where they were searched; records that scope for the report and the
    watches that will cover it. A kind whose CRD is not installed has no objects anywhere.
    """
    if access.may_read(kind):
        try:
            objects = (
                found.prefetched.cluster_wide(ctx, kind) if found.prefetched else list_objects(ctx, kind)
            )
        except NotInstalledError:
            found.scope.append(f"{kind}: not installed")
            return [], "nowhere (not installed)"
        found.scope.append(f"{kind}: all namespaces")
        found.watchable_everywhere.add(kind)
        return objects, "all namespaces"
    allowed = [ns for ns in namespaces if access.may_read(kind, ns)]
    if not allowed:
        # kubectl resolves the kind before asking the server: an absent CRD lists as empty, an
        # installed one the identity may not read raises ForbiddenError.
        try:
            list_objects(ctx, kind, namespaces[0])
        except NotInstalledError:
            found.scope.append(f"{kind}: not installed")
            return [], "nowhere (not installed)"
        except ForbiddenError:
            pass
        checks = "; ".join(access.missing_read(kind, ns) for ns in ["", *namespaces])
        raise ForbiddenError(f"the Kubernetes identity may not read {kind} objects: it lacks {checks}")
    try:
        objects = [obj for ns in allowed for obj in list_objects(ctx, kind, ns)]
    except NotInstalledError:
        found.scope.append(f"{kind}: not installed")
        return [], "nowhere (not installed)"
    where = f"namespace{'s' if len(allowed) > 1 else ''} {', '.join(allowed)}"
    denied = [ns for ns in namespaces if ns not in allowed]
    found.scope.append(
        f"{kind}: only {where} (not allowed: {access.missing_read(kind)}"
        + "".join(f"; {access.missing_read(kind, ns)}" for ns in denied)
        + ")"
    )
    return objects, where


def _classify(
    ctx: Context, sources: Sequence[Obj], found: Found, *, tags: Sequence[str], digest: str | None
) -> list[Obj]:
    """The sources this run can reach; exit 2 at once where it can never succeed.

    A source following another tag, a semver range or a pinned digest is another environment's:
    it is left out with a note, unless it was named in FLUX_CI_OCIREPOSITORY or no source is left.
    A suspended source that follows us can never fetch the artifact, nor can a source that verifies
    signatures (`spec.verify`) an artifact this run pushes unsigned (`digest` None: this run pushes).
    """
    strict = ctx.settings.ocirepository is not None
    ours, problems = [], []
    for obj in sources:
        reason = _follows_elsewhere(obj, tags, digest)
        if reason:
            found.left_out.append(reason)
            continue
        ours.append(obj)
        if obj.get("spec", {}).get("suspend"):
            ref = fo.ref_of(obj)
            problems.append(f"{ref} is suspended (flux resume source oci {ref.name} -n {ref.namespace})")
        if digest is None and ctx.settings.sign == "none" and (unsigned := _needs_signature(obj)):
            problems.append(unsigned)
    if problems or not ours or (strict and found.left_out):
        listed = "\n".join(f"  - {problem}" for problem in [*problems, *found.left_out])
        raise ConfigError(f"the OCIRepository setup can never fetch this artifact:\n{listed}")
    for reason in found.left_out:
        ctx.progress.note(f"left out: {reason}")
    return ours


def _needs_signature(obj: Obj) -> str | None:
    verify = obj.get("spec", {}).get("verify")
    if not isinstance(verify, dict) or not verify:
        return None
    provider = verify.get("provider", "cosign")
    return (
        f"{fo.ref_of(obj)} accepts only signed artifacts (spec.verify.provider: {provider}), and "
        "FLUX_CI_SIGN is none: set FLUX_CI_SIGN=cosign with COSIGN_PRIVATE_KEY and COSIGN_PASSWORD "
        "(or FLUX_CI_SIGN=cosign-keyless), matching the key or identity the source verifies"
    )


def _follows_elsewhere(obj: Obj, tags: Sequence[str], digest: str | None) -> str | None:
    ref = fo.ref_of(obj)
    kind, value = fo.followed_ref(obj)
    if kind == "digest":
        if digest is None:
            return f"{ref} pins digest {value}: a push makes a new digest, which it would never fetch"
        return None if value == digest else f"{ref} pins digest {value}, not {digest}"
    if kind == "semver":
        return f"{ref} follows the semver range {value!r}, not a tag this run pushes"
    if tags and value not in tags:
        return f"{ref} follows tag {value!r}, but this run pushes tags: {', '.join(tags)}"
    return None


# --- consumers ---------------------------------------------------------------------------------


def _find_consumers(
    ctx: Context,
    access: _Access,
    found: Found,
    named: list[ObjectRef] | None,
    source_namespaces: Sequence[str],
    *,
    strict: bool,
) -> None:
    """FLUX_CI_WAIT_FOR if set (`none` → nothing), else every consumer whose source is one of ours."""
    if named is not None:
        found.consumers = [get_object(ctx, ref) for ref in named]
        found.scope.append(
            "consumers: "
            + (
                ", ".join(map(str, named)) + " (FLUX_CI_WAIT_FOR)"
                if named
                else "none (FLUX_CI_WAIT_FOR=none)"
            )
        )
        _refuse_suspended(found.consumers)
        return
    wanted = {fo.ref_of(obj) for obj in found.sources}
    namespaces = sorted({ctx.settings.namespace, *source_namespaces})
    hidden: list[str] = []

    def search(kind: str) -> list[Obj]:
        try:
            objects, where = _list_visible(ctx, access, found, kind, namespaces)
        except ForbiddenError as exc:
            hidden.append(exc.message)
            return []
        if where != "all namespaces" and not where.startswith("nowhere"):
            hidden.append(f"{kind} objects outside {where}")
        return [obj for obj in objects if fo.consumer_source(obj) in wanted]

    results = [search(kind) for kind in CONSUMER_KINDS]  # their lists were started up front
    found.consumers = sorted((obj for objects in results for obj in objects), key=fo.ref_of)
    unseen_home = [h for h in hidden if "may not read" in h]
    if hidden and (not found.consumers or unseen_home):
        # What cannot be seen may hold a consumer: never call a part of them the whole.
        raise ClusterError(
            "cannot see every Kustomization/HelmRelease that may read "
            + ", ".join(str(ref) for ref in sorted(wanted))
            + f" (searched {'; '.join(found.scope)}; cannot see: {'; '.join(hidden)}). Grant the read "
            "rights in the README's RBAC section, or name the consumers in FLUX_CI_WAIT_FOR"
        )
    for limit in hidden:
        ctx.progress.note(f"not searched: {limit} (the identity may not list them)")
    if not found.consumers and strict:
        raise ConfigError(
            "no Kustomization or HelmRelease reads "
            + ", ".join(str(ref) for ref in sorted(wanted))
            + f" (searched {'; '.join(found.scope)}, for a spec.sourceRef/spec.chartRef naming it). "
            "Exit 0 would prove nothing: create the consumer, name it in FLUX_CI_WAIT_FOR, or set "
            "FLUX_CI_WAIT_FOR=none to wait for the sources only"
        )
    _refuse_suspended(found.consumers)


def _refuse_suspended(consumers: Sequence[Obj]) -> None:
    suspended = [fo.ref_of(obj) for obj in consumers if obj.get("spec", {}).get("suspend")]
    if suspended:
        names = ", ".join(str(ref) for ref in suspended)
        raise ConfigError(f"suspended, so they will never apply this artifact: {names}")
