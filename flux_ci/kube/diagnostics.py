"""Why a consumer did not apply the artifact, as the cluster tells it: the objects its health checks
wait for (or its inventory holds) that are failing, their latest Warning events, what Flux does next,
and the commands that show more.

The functions that turn objects and events into `Diagnostic` records are pure; `gather` reads them
with kubectl, within a budget of its own (the deadline has passed already at exit 8), and every read
is bounded: a few namespaces of events, a few objects' status, a few events per object.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flux_ci.context import Context
from flux_ci.errors import DeadlineExceededError
from flux_ci.kube.fluxobjects import Obj, condition, cut, ready_status, ref_of
from flux_ci.report.models import Diagnostic, FailingObject, ObjectRef
from flux_ci.tools import kubectl, kubectl_summary

# Reading diagnostics takes at most this long in all, on top of the deadline (FLUX_CI_TIMEOUT):
# one `kubectl get events` per namespace and one `kubectl get` per object named by a health check,
# each ~0.1-0.3 s against a nearby API server.
GATHER_BUDGET_S = 5.0
MAX_OBJECTS = 10  # failing objects named in one report, across all consumers
MAX_EVENTS = 3  # Warning events per object, newest first
MAX_NAMESPACES = 3  # namespaces whose events are read
MAX_READS = 5  # objects whose own status is read

# kustomize-controller's health-check message: "timeout waiting for: [Deployment/ns/web status: 'InProgress']"
_NAMED = re.compile(r"\b([A-Z][A-Za-z0-9]*)/([a-z0-9][a-z0-9.-]*)/([a-z0-9][a-z0-9.-]*)(?: status: '(\w+)')?")
_FLUX_GET = {"Kustomization": "kustomizations", "HelmRelease": "helmreleases"}


@dataclass(frozen=True, order=True)
class Entry:
    """One object a consumer applied: an inventory id `<namespace>_<name>_<group>_<Kind>`."""

    kind: str
    namespace: str
    name: str
    group: str = ""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)


def inventory(consumer: Obj) -> list[Entry]:
    """The objects a Kustomization applied (status.inventory); a HelmRelease has none here."""
    entries = (consumer.get("status", {}).get("inventory") or {}).get("entries") or []
    found = []
    for entry in entries:
        parts = str(entry.get("id", "")).split("_")
        if len(parts) == 4 and parts[1] and parts[3]:
            namespace, name, group, kind = parts
            found.append(Entry(kind, namespace, name, group))
    return found


def health_messages(consumer: Obj) -> list[str]:
    """The Ready and Healthy messages (they name what the health checks wait for)."""
    messages = [ready_status(consumer)[1]]
    healthy = condition(consumer, "Healthy")
    if healthy is not None and healthy.get("status") != "True":
        messages.append(str(healthy.get("message", "")))
    return [m for m in messages if m]


def named(consumer: Obj) -> dict[ObjectRef, str]:
    """Objects the consumer's messages name as `Kind/namespace/name`, with their health status."""
    found: dict[ObjectRef, str] = {}
    for message in health_messages(consumer):
        for kind, namespace, name, status in _NAMED.findall(message):
            ref = ObjectRef(kind, namespace, name)
            if ref != ref_of(consumer) and (status or ref not in found):
                found[ref] = status
    return found


def to_read(consumer: Obj) -> list[Entry]:
    """The named objects whose own status is worth reading (with their API group from the inventory)."""
    groups = {entry.ref: entry.group for entry in inventory(consumer)}
    return [Entry(ref.kind, ref.namespace, ref.name, groups.get(ref, "")) for ref in named(consumer)]


def warnings(events: Sequence[Obj], ref: ObjectRef) -> tuple[str, ...]:
    """The latest Warning events about `ref`, newest first: `Reason: message (count times)`."""
    mine = [
        event
        for event in events
        if event.get("type") == "Warning"
        and (involved := event.get("involvedObject", {})).get("kind") == ref.kind
        and involved.get("name") == ref.name
        and involved.get("namespace", "") == ref.namespace
    ]
    mine.sort(key=_when, reverse=True)
    return tuple(_event_text(event) for event in mine[:MAX_EVENTS])


def _when(event: Obj) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def _event_text(event: Obj) -> str:
    count = int(event.get("count") or 1)
    text = f"{event.get('reason', '')}: {cut(str(event.get('message', '')))}"
    return f"{text} ({count} times)" if count > 1 else text


def object_status(health: str, obj: Obj | None) -> str:
    """What the health check said and the object's own conditions that are not True."""
    parts = [f"health check: {health}"] if health else []
    if obj is not None:
        status = obj.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if c.get("status") != "True"]
        for cond in conditions:
            reason = f" {cond['reason']}" if cond.get("reason") else ""
            parts.append(
                f"{cond.get('type')}={cond.get('status')}{reason}: {cond.get('message', '')}".strip()
            )
        if not status:
            parts.append("no status: no controller has reported on it")
    return cut("; ".join(parts))


def retry_text(consumer: Obj, digest: str) -> str:
    """What Flux does by itself: try the digest again every spec.retryInterval, else spec.interval."""
    spec = consumer.get("spec", {})
    interval = spec.get("retryInterval") or spec.get("interval")
    if not interval:
        return f"Flux retries {digest} at its next reconciliation"
    return f"Flux keeps retrying {digest} every {interval}"


def commands(ref: ObjectRef, kube_context: str | None) -> tuple[str, ...]:
    """The flux commands that show this consumer's events and state."""
    context = [f"--context={kube_context}"] if kube_context else []
    plural = _FLUX_GET.get(ref.kind, ref.kind.lower() + "s")
    return (
        shlex.join(["flux", "events", "--for", f"{ref.kind}/{ref.name}", "-n", ref.namespace, *context]),
        shlex.join(["flux", "get", plural, ref.name, "-n", ref.namespace, *context]),
    )


def diagnose(
    consumer: Obj,
    digest: str,
    *,
    events: Sequence[Obj] = (),
    objects: Mapping[ObjectRef, Obj] | None = None,
    kube_context: str | None = None,
    limit: int = MAX_OBJECTS,
) -> Diagnostic:
    """One consumer's diagnostic: the objects its health checks name first, then the inventory's
    objects with Warning events, at most `limit` of them."""
    objects = objects or {}
    ref = ref_of(consumer)
    failing = []
    health = named(consumer)
    for obj_ref, status in health.items():
        failing.append(
            FailingObject(obj_ref, object_status(status, objects.get(obj_ref)), warnings(events, obj_ref))
        )
    for entry in inventory(consumer):
        if entry.ref not in health and (found := warnings(events, entry.ref)):
            failing.append(FailingObject(entry.ref, object_status("", objects.get(entry.ref)), found))
    messages = health_messages(consumer)
    return Diagnostic(
        ref,
        cut(messages[0] if messages else ""),
        retry_text(consumer, digest),
        commands(ref, kube_context),
        warnings(events, ref),
        tuple(failing[: max(limit, 0)]),
    )


# --- reading them ------------------------------------------------------------------------------


def gather(
    ctx: Context, consumers: Sequence[Obj], digest: str, *, budget_s: float = GATHER_BUDGET_S
) -> list[Diagnostic]:
    """Read the events and the named objects' status, then diagnose every consumer given.

    A read that fails or does not fit in the budget is left out: diagnostics never hide the failure
    they explain.
    """
    until = time.monotonic() + budget_s
    context = ctx.settings.kube_context
    reads = [entry for consumer in consumers for entry in to_read(consumer)][:MAX_READS]
    namespaces = sorted(
        {ref_of(c).namespace for c in consumers} | {e.namespace for e in reads if e.namespace}
    )
    events: list[Obj] = []
    for namespace in namespaces[:MAX_NAMESPACES]:
        events += _read(ctx, kubectl.events_argv(context, namespace), until, kubectl.parse_events)
    objects: dict[ObjectRef, Obj] = {}
    for entry in reads:
        if not entry.namespace:
            continue  # cluster-scoped: its health message says enough
        resource = kubectl.resource_name(entry.kind, entry.group)
        argv = kubectl.get_argv(context, resource, namespace=entry.namespace, name=entry.name)
        objects.update((entry.ref, obj) for obj in _read(ctx, argv, until, kubectl.parse_items)[:1])
    diagnostics = []
    left = MAX_OBJECTS
    for consumer in consumers:
        diagnostic = diagnose(
            consumer, digest, events=events, objects=objects, kube_context=context, limit=left
        )
        left -= len(diagnostic.objects)
        diagnostics.append(diagnostic)
    return diagnostics


def _read(ctx: Context, argv: list[str], until: float, parse: Callable[[str], list[Obj]]) -> list[Obj]:
    """The objects kubectl printed; none when it failed, was cut by the budget, or the budget is spent."""
    remaining = until - time.monotonic()
    if remaining < 0.1:  # less than a kubectl round trip
        return []
    try:
        result = ctx.runner.run(argv, timeout=remaining, trace_output=kubectl_summary.summarise)
    except DeadlineExceededError:
        return []
    if not result.ok:
        return []
    try:
        return parse(result.stdout)
    except ValueError:
        return []
