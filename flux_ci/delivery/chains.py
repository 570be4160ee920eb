"""dependsOn chains at the controllers' pace. kustomize-controller and helm-controller re-check a
dependant whose dependency is not ready only every `--requeue-dependency` (30 s by default), so each
link of a chain (CRDs, then operators, then apps) costs up to 30 s. A dependant passes its controller's
check once each dependency is Ready for its current generation and, sharing the source, has applied
the same revision (kustomize-controller `checkDependencies`): exactly flux-ci's own verdict of done.
So as soon as a consumer flux-ci waits for is done with the digest, each consumer waiting on it is
asked to reconcile at once, the way FLUX_CI_NOTIFY says, and each link costs the controller's work.

Only consumers flux-ci waits for are nudged; dependencies it does not wait for (another source, not
pushed by this run) are left to Flux. A dependency that fails is a consumer waited for: its failure
ends the run at once, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.kube import fluxobjects as fo
from flux_ci.kube import notify
from flux_ci.kube.engine import Observer
from flux_ci.kube.fluxobjects import Obj
from flux_ci.kube.verdicts import Phase
from flux_ci.report.models import ObjectRef
from flux_ci.tools.kubectl import RESOURCES

# kustomize-controller's and helm-controller's default `--requeue-dependency`.
REQUEUE_DEPENDENCY = "30s"


@dataclass
class Chain:
    """The consumers waited for, by the consumer each waits on (`spec.dependsOn`)."""

    ctx: Context
    observer: Observer
    requests: notify.Requests
    patchable: set[ObjectRef]
    digest: str
    dependants: dict[ObjectRef, list[Obj]] = field(default_factory=dict)
    _noted: set[ObjectRef] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        ctx: Context,
        observer: Observer,
        requests: notify.Requests,
        *,
        consumers: Sequence[Obj],
        patchable: set[ObjectRef],
        digest: str,
    ) -> Chain:
        waited = {fo.ref_of(obj) for obj in consumers}
        chain = cls(ctx, observer, requests, patchable, digest)
        for obj in consumers:
            for dependency in fo.depends_on(obj):
                if dependency in waited:
                    chain.dependants.setdefault(dependency, []).append(obj)
        return chain

    def done(self, ref: ObjectRef) -> None:
        """`ref` is done with the digest: ask every consumer waiting on it, that is not done, to go on."""
        waiting = [obj for obj in self.dependants.get(ref, []) if not self._done(fo.ref_of(obj))]
        asked = [obj for obj in waiting if self._may_ask(fo.ref_of(obj))]
        if not asked:
            return
        tokens = self.requests.nudge(asked)
        for obj in asked:
            dependant = fo.ref_of(obj)
            how = "reconcile requested" if tokens.get(dependant) else "no request (FLUX_CI_NOTIFY=none)"
            self.ctx.progress.note(f"{dependant}: dependency {ref} applied {self.digest} → {how}")

    def _done(self, ref: ObjectRef) -> bool:
        verdict = self.observer.verdicts.get(ref)
        return verdict is not None and verdict.phase is Phase.DONE

    def _may_ask(self, ref: ObjectRef) -> bool:
        if not notify.annotates(self.ctx) or ref in self.patchable:
            return True
        if ref not in self._noted:
            self._noted.add(ref)
            self.ctx.progress.note(
                f"{ref}: may not patch {RESOURCES[ref.kind]} in namespace {ref.namespace}: the chain moves "
                f"at Flux's own pace (--requeue-dependency, {REQUEUE_DEPENDENCY} by default); grant `patch` "
                "to let flux-ci move it on as soon as its dependency is done"
            )
        return False
