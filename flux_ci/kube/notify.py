"""How Flux learns that a new artifact exists (FLUX_CI_NOTIFY), all three ways, and the token each
requested object will echo in `status.lastHandledReconcileAt` once its controller handled the request.

- `annotate` (the default): flux-ci writes `reconcile.fluxcd.io/requestedAt` itself (`kubectl
  annotate`, one call per kind and namespace); the identity needs `patch` on the objects.
- `receiver`: one POST to a notification-controller Receiver webhook (`receiver`), which writes that
  annotation on the resources the Receiver names. flux-ci needs no write access; with read access it
  then waits exactly as with `annotate`, and with FLUX_CI_VERIFY=false it reads nothing at all and
  ends with status `triggered` (`trigger_only`): nothing was verified.
- `none`: nothing is requested; source-controller fetches the tag at its `spec.interval`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube.cluster import new_token, request_reconcile
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.receiver import trigger
from flux_ci.report.models import Artifact, ObjectRef, Report, Status

Tokens = dict[ObjectRef, str | None]
READ_BACK_S = 5.0  # a Receiver writes the annotation before its 200: the watch shows it within moments


def annotates(ctx: Context) -> bool:
    """Only FLUX_CI_NOTIFY=annotate writes to the cluster (the reconcile annotation)."""
    return ctx.settings.notify_mode == "annotate"


def trigger_only(ctx: Context, report: Report, artifact: Artifact) -> None:
    """FLUX_CI_VERIFY=false: ask the Receiver and read nothing. Status `triggered`: nothing verified."""
    with ctx.progress.step("trigger", ctx.settings.receiver or ""):
        receiver = trigger(ctx, artifact)
    ctx.progress.skip("wait", "FLUX_CI_VERIFY=false: the cluster is not read, nothing is verified")
    report.status = Status.TRIGGERED
    report.notes.append(
        f"triggered: Receiver {receiver.namespace}/{receiver.name} accepted the request, so "
        "notification-controller asked Flux to reconcile what it names; the cluster was not read "
        "(FLUX_CI_VERIFY=false): whether Flux fetched and applied this digest was not verified"
    )


@contextmanager
def unverified_hint(ctx: Context) -> Iterator[None]:
    """In receiver mode, a cluster that cannot be read (no kubeconfig, no rights) names the way
    without it; it is never taken silently: exit 0 must not rest on a kubeconfig gone missing."""
    try:
        yield
    except ClusterError as exc:
        if ctx.settings.notify_mode == "receiver":
            exc.message += (
                ". Nothing was pushed. If this job may not read the cluster at all, "
                "FLUX_CI_VERIFY=false pushes and triggers the Receiver without verifying anything "
                "(status triggered)"
            )
            exc.args = (exc.message,)
        raise


# --- the requests --------------------------------------------------------------------------------


@dataclass
class Requests:
    """One run's reconcile requests in one cluster, made the way FLUX_CI_NOTIFY says. `request`
    returns the token each object will echo in status.lastHandledReconcileAt (None: nothing was
    requested of it, or the token is unknown)."""

    ctx: Context
    latest: Mapping[ObjectRef, Obj]  # the watches' latest view of every object
    artifact: Artifact
    # reconcile.fluxcd.io/requestedAt of every object just before the Receiver was called (None:
    # not called yet; it is called once per run, and names its resources itself).
    before: dict[ObjectRef, str] | None = None
    tokens: dict[ObjectRef, str] = field(default_factory=dict)

    def request(self, objects: Sequence[Obj], wanted: Callable[[Obj], bool]) -> Tokens:
        chosen = [obj for obj in objects if wanted(obj)]
        answer: Tokens = {fo.ref_of(obj): None for obj in objects}
        for obj in objects:
            if obj not in chosen and obj.get("kind") == "OCIRepository":
                self.ctx.progress.note(f"{fo.ref_of(obj)} already holds the digest: not requested again")
        if not chosen:
            return answer
        if annotates(self.ctx):
            return answer | annotate(self.ctx, chosen)
        if self.ctx.settings.notify_mode == "none":
            for obj in chosen:
                self.ctx.progress.note(
                    f"{fo.ref_of(obj)}: not requested (FLUX_CI_NOTIFY=none): {_unrequested(obj)}"
                )
            return answer
        if self.before is None:
            self.before = {ref: fo.requested_at(obj) for ref, obj in dict(self.latest).items()}
            trigger(self.ctx, self.artifact)
        answer |= self._read_back([fo.ref_of(obj) for obj in chosen], self.before)
        return answer

    def nudge(self, objects: Sequence[Obj]) -> Tokens:
        """Ask these objects again, now (a dependency of theirs just became ready): annotate them, or
        call the Receiver again (it asks what it names); `none` asks nothing. Their new tokens."""
        answer: Tokens = {fo.ref_of(obj): None for obj in objects}
        if annotates(self.ctx):
            return answer | annotate(self.ctx, objects)
        if self.ctx.settings.notify_mode == "none":
            return answer
        refs = [fo.ref_of(obj) for obj in objects]
        before = {ref: fo.requested_at(self.latest.get(ref)) for ref in refs}
        for ref in refs:
            self.tokens.pop(ref, None)
        trigger(self.ctx, self.artifact)
        return answer | self._read_back(refs, before)

    def _read_back(self, refs: list[ObjectRef], before: Mapping[ObjectRef, str]) -> dict[ObjectRef, str]:
        """The requestedAt notification-controller wrote on each object since the call, as the
        watches show it; an object the Receiver does not name keeps its old value."""
        until = time.monotonic() + min(READ_BACK_S, self.ctx.deadline.remaining)
        pending = [ref for ref in refs if ref not in self.tokens]
        while pending and not self.ctx.runner.dry_run:
            for ref in list(pending):
                value = fo.requested_at(self.latest.get(ref))
                if value and value != before.get(ref):
                    self.tokens[ref] = value
                    pending.remove(ref)
                    self.ctx.progress.note(f"{ref}: reconcile requested by the Receiver at {value}")
            if not pending or time.monotonic() >= until:
                break
            self.ctx.pause(0.05)
        for ref in pending:
            obj = self.latest.get(ref) or {}
            self.ctx.progress.note(
                f"{ref}: the Receiver did not ask Flux to reconcile it (is it in the Receiver's "
                f"spec.resources?); {_unrequested(obj)}"
            )
        return {ref: self.tokens[ref] for ref in refs if ref in self.tokens}


def annotate(ctx: Context, objects: Sequence[Obj]) -> dict[ObjectRef, str]:
    """Write the reconcile annotation on every object (one call per kind and namespace); their tokens."""
    groups: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        ref = fo.ref_of(obj)
        groups.setdefault((ref.kind, ref.namespace), []).append(ref.name)
    tokens: dict[ObjectRef, str] = {}
    for (kind, namespace), names in sorted(groups.items()):
        token = new_token()
        request_reconcile(ctx, kind, namespace, names, token)
        tokens |= {ObjectRef(kind, namespace, name): token for name in names}
        ctx.progress.note(f"reconcile requested: {kind} {', '.join(names)} in {namespace}")
    return tokens


def _unrequested(obj: Obj) -> str:
    """What happens to an object nobody asked to reconcile."""
    interval = obj.get("spec", {}).get("interval") or "?"
    if obj.get("kind") == "OCIRepository":
        return f"source-controller fetches the tag at its interval, every {interval}"
    return (
        f"it is not asked to apply again: its controller retries every {interval}, and its current "
        "state for this digest decides"
    )
