"""Reads and writes of Flux objects through kubectl, with failures classified as cluster errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.fluxobjects import Obj
from flux_ci.models import ObjectRef
from flux_ci.tools import kubectl

_READ_TIMEOUT_S = 60.0
_REWATCH_PAUSE_S = 1.0


def list_objects(ctx: Context, kind: str, namespace: str | None = None) -> list[Obj]:
    """Every object of a Flux kind (all namespaces unless one is given); [] if the CRD is absent."""
    argv = kubectl.get_argv(ctx.settings.kube_context, kubectl.RESOURCES[kind], namespace=namespace)
    result = ctx.runner.run(argv, timeout=ctx.timeout(_READ_TIMEOUT_S))
    if result.ok:
        return kubectl.parse_items(result.stdout)
    if kubectl.missing_resource_type(result.stderr):
        return []  # e.g. no helm-controller installed: there can be no HelmRelease to wait for
    if namespace is None and "forbidden" in result.stderr.lower():
        # Namespaced RBAC (e.g. a GitLab agent limited to one namespace): look where we may.
        return list_objects(ctx, kind, ctx.settings.namespace)
    raise kubectl.failure(f"listing {kind} objects", result.stderr)


def get_object(ctx: Context, ref: ObjectRef) -> Obj:
    argv = kubectl.get_argv(
        ctx.settings.kube_context, kubectl.RESOURCES[ref.kind], namespace=ref.namespace, name=ref.name
    )
    result = ctx.runner.run(argv, timeout=ctx.timeout(_READ_TIMEOUT_S))
    if not result.ok:
        if "NotFound" in result.stderr or kubectl.missing_resource_type(result.stderr):
            raise ClusterError(f"{ref} not found")
        raise kubectl.failure(f"reading {ref}", result.stderr)
    return kubectl.parse_items(result.stdout)[0]


def request_reconcile(ctx: Context, ref: ObjectRef) -> str:
    """Write reconcile.fluxcd.io/requestedAt; returns the token Flux echoes in lastHandledReconcileAt."""
    token = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    argv = kubectl.annotate_argv(
        ctx.settings.kube_context, kubectl.RESOURCES[ref.kind], ref.namespace, ref.name, token
    )
    result = ctx.runner.run(argv, timeout=ctx.timeout(_READ_TIMEOUT_S), mutating=True)
    if not result.ok:
        raise kubectl.failure(f"requesting reconciliation of {ref}", result.stderr)
    return token


def watch_object(ctx: Context, ref: ObjectRef) -> Iterator[Obj]:
    """The object now, then after each change, until the deadline (the watch restarts if it drops)."""
    argv = kubectl.watch_argv(ctx.settings.kube_context, kubectl.RESOURCES[ref.kind], ref.namespace, ref.name)
    while ctx.active():
        yield from kubectl.iter_json_documents(ctx.runner.stream(argv, timeout=ctx.timeout()))
        if not ctx.active():
            return
        # The stream ended early (API server closed the watch, or kubectl failed): re-read once
        # so a hard error (object deleted, access revoked) surfaces instead of looping silently,
        # and pause so a watch that keeps failing does not spin.
        yield get_object(ctx, ref)
        ctx.cancelled.wait(min(_REWATCH_PAUSE_S, ctx.deadline.remaining))
