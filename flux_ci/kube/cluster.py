"""Reads and writes of Flux objects through kubectl, with failures classified as cluster errors.

Every one-shot call's timeout is cut from the command's deadline: kubectl gives up each request to
the API server by itself after its share of the time left (`--request-timeout`, `Deadline.attempt`),
so a silent API server ends the read as unreachable (retryable) while time is left to try again;
the child as a whole may take what is left. A watch runs until the deadline. At -vv the trace shows
one line per object kubectl printed (`kubectl_summary.summarise`), never the objects: they are cluster data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from flux_ci.context import Context
from flux_ci.errors import ClusterError, DeadlineExceededError
from flux_ci.kube.fluxobjects import Obj
from flux_ci.report.models import ObjectRef
from flux_ci.tools import kubectl, kubectl_summary
from flux_ci.tools.kubectl import AccessCheck
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.runner import CommandResult


class ForbiddenError(ClusterError):
    """The API server refused a read: RBAC does not allow it (exit 5)."""


class NotInstalledError(ClusterError):
    """The cluster has no such kind (its CRD is absent, e.g. no helm-controller)."""


def _context(ctx: Context) -> str | None:
    return ctx.settings.kube_context


def _kubectl(
    ctx: Context,
    argv: list[str],
    *,
    stdin: str | None = None,
    mutating: bool = False,
    trace_output: TraceOutput | None = kubectl_summary.summarise,
) -> CommandResult:
    """One kubectl call: what is left of the deadline as its timeout, its output traced as a summary."""
    return ctx.runner.run(
        argv, timeout=ctx.timeout(), stdin=stdin, mutating=mutating, trace_output=trace_output
    )


def list_objects(ctx: Context, kind: str, namespace: str | None = None) -> list[Obj]:
    """Every object of a Flux kind in a namespace (all when None); NotInstalledError if the CRD is absent."""
    argv = kubectl.get_argv(
        _context(ctx), kubectl.RESOURCES[kind], namespace=namespace, request_timeout_s=ctx.deadline.attempt()
    )
    result = _kubectl(ctx, argv)
    if result.ok:
        return kubectl.parse_items(result.stdout)
    if kubectl.missing_resource_type(result.stderr):
        raise NotInstalledError(f"the cluster has no {kind} kind (its CRD is not installed)")
    scope = f"namespace {namespace}" if namespace else "all namespaces"
    error = kubectl.failure(f"listing {kind} objects in {scope}", result.stderr)
    raise ForbiddenError(error.message) if kubectl.forbidden(result.stderr) else error


def list_kinds(ctx: Context, kinds: Sequence[str]) -> dict[str, list[Obj]]:
    """Every object of several Flux kinds in all namespaces, in one kubectl call. It fails as a whole
    (ClusterError) when any kind fails, not installed or not allowed: `list_objects` tells those apart."""
    resources = ",".join(kubectl.RESOURCES[kind] for kind in kinds)
    result = _kubectl(
        ctx, kubectl.get_argv(_context(ctx), resources, request_timeout_s=ctx.deadline.attempt())
    )
    if not result.ok:
        raise kubectl.failure(f"listing {', '.join(kinds)} objects in all namespaces", result.stderr)
    listed: dict[str, list[Obj]] = {kind: [] for kind in kinds}
    for obj in kubectl.parse_items(result.stdout):
        listed.setdefault(str(obj.get("kind")), []).append(obj)
    return listed


def get_object(ctx: Context, ref: ObjectRef) -> Obj:
    argv = kubectl.get_argv(
        _context(ctx),
        kubectl.RESOURCES[ref.kind],
        namespace=ref.namespace,
        name=ref.name,
        request_timeout_s=ctx.deadline.attempt(),
    )
    result = _kubectl(ctx, argv)
    if not result.ok:
        if "NotFound" in result.stderr or kubectl.missing_resource_type(result.stderr):
            raise ClusterError(f"{ref} not found")
        raise kubectl.failure(f"reading {ref}", result.stderr)
    return kubectl.parse_items(result.stdout)[0]


def new_token() -> str:
    """A reconcile.fluxcd.io/requestedAt value; Flux echoes it in status.lastHandledReconcileAt."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_reconcile(ctx: Context, kind: str, namespace: str, names: Sequence[str], token: str) -> None:
    """Write the reconcile annotation on every named object of one namespace, in one call."""
    argv = kubectl.annotate_argv(
        _context(ctx),
        kubectl.RESOURCES[kind],
        namespace,
        names,
        token,
        request_timeout_s=ctx.deadline.attempt(),
    )
    result = _kubectl(ctx, argv, mutating=True, trace_output=None)  # prints only what it annotated
    if result.ok:
        return
    error = kubectl.failure(
        f"requesting reconciliation of {kind} {', '.join(names)} in {namespace}", result.stderr
    )
    if kubectl.forbidden(result.stderr):
        raise ClusterError(
            f"{error.message}; the reconcile request needs `patch` on {kubectl.RESOURCES[kind]} in "
            f"namespace {namespace} (see the README's RBAC section)"
        )
    raise error


def can_i(ctx: Context, checks: Sequence[AccessCheck]) -> dict[AccessCheck, bool]:
    """Ask the API server about every check in one SelfSubjectAccessReview batch."""
    unique = sorted(set(checks))
    if not unique:
        return {}
    argv = kubectl.access_review_argv(_context(ctx), request_timeout_s=ctx.deadline.attempt())
    result = _kubectl(ctx, argv, stdin=kubectl.access_reviews_document(unique))
    if not result.ok:
        raise kubectl.failure("checking permissions (SelfSubjectAccessReview)", result.stderr)
    try:
        return kubectl.parse_access_reviews(result.stdout, unique)
    except (ValueError, KeyError) as exc:
        raise ClusterError(f"cannot read the permission check's answer: {exc}") from None


def watch_stream(ctx: Context, kind: str, namespace: str | None) -> Iterator[tuple[str, Obj]]:
    """One pass of `kubectl get --watch`: (event type, object) until kubectl ends or is stopped."""
    argv = kubectl.watch_argv(_context(ctx), kubectl.RESOURCES[kind], namespace)
    lines = ctx.runner.stream(argv, timeout=ctx.timeout(), trace_output=kubectl_summary.summarise)
    for document in kubectl.iter_json_documents(lines):
        yield kubectl.watch_event(document)


def probe(ctx: Context, timeout: float) -> str | None:
    """Does the API server answer one cheap, bounded request (`/readyz`)? None if it does, else why
    not. Every authenticated identity may read it (ClusterRole system:public-info-viewer)."""
    argv = kubectl.readyz_argv(_context(ctx), timeout)
    try:
        result = ctx.runner.run(argv, timeout=timeout + 1.0)
    except DeadlineExceededError:
        return f"no answer within {timeout:g}s"
    if result.ok:
        return None
    return kubectl.failure("asking whether the API server answers", result.stderr).message
