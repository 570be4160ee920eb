"""What the identity may do, asked of the API server up front (SelfSubjectAccessReviews, as few
batches as possible), so that a missing right is named with its verb, resource and scope before
anything is pushed, instead of surfacing as an obscure failure halfway through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.kube.cluster import can_i
from flux_ci.tools.kubectl import RESOURCES, AccessCheck

SOURCE_KIND = "OCIRepository"
CONSUMER_KINDS = ("Kustomization", "HelmRelease")
READ_VERBS = ("list", "watch")


@dataclass
class Access:
    """The answers of the permission checks asked so far."""

    ctx: Context
    answers: dict[AccessCheck, bool] = field(default_factory=dict)

    def ask(self, checks: Sequence[AccessCheck]) -> None:
        missing = [check for check in checks if check not in self.answers]
        if missing:
            self.answers |= can_i(self.ctx, missing)

    def may(self, verb: str, kind: str, namespace: str = "") -> bool:
        return self.answers.get(AccessCheck(verb, RESOURCES[kind], namespace), False)

    def may_read(self, kind: str, namespace: str = "") -> bool:
        return all(self.may(verb, kind, namespace) for verb in READ_VERBS)

    def missing_read(self, kind: str, namespace: str = "") -> str:
        verbs = [verb for verb in READ_VERBS if not self.may(verb, kind, namespace)]
        return str(AccessCheck("/".join(verbs), RESOURCES[kind], namespace))


def read_checks(kinds: Sequence[str], namespaces: Sequence[str]) -> list[AccessCheck]:
    """list/watch of each kind cluster-wide and in each namespace."""
    return [
        AccessCheck(verb, RESOURCES[kind], namespace)
        for kind in kinds
        for namespace in ("", *namespaces)
        for verb in READ_VERBS
    ]


def patch_checks(kinds: Sequence[str], namespaces: Sequence[str]) -> list[AccessCheck]:
    return [AccessCheck("patch", RESOURCES[kind], ns) for kind in kinds for ns in namespaces]


def require_source_patch(access: Access, namespaces: Sequence[str]) -> None:
    """FLUX_CI_NOTIFY=annotate writes the reconcile annotation on the sources: exit 5 without it."""
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
