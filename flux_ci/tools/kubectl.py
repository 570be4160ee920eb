"""The `kubectl` CLI: JSON reads, watches, the reconcile annotation, and error classification.

All kubectl failures exit 1, so the cause is read from the message (`Error from server (NotFound)`,
`Unable to connect to the server`, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flux_ci.errors import ClusterError

OCIREPOSITORIES = "ocirepositories.source.toolkit.fluxcd.io"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
HELMRELEASES = "helmreleases.helm.toolkit.fluxcd.io"
RESOURCES = {
    "OCIRepository": OCIREPOSITORIES,
    "Kustomization": KUSTOMIZATIONS,
    "HelmRelease": HELMRELEASES,
}
RECONCILE_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
# The field manager Flux's own docs use for this annotation, so Flux-side tools see one owner.
FIELD_MANAGER = "flux-client-side-apply"


@dataclass(frozen=True, order=True)
class AccessCheck:
    """One question for the API server: may I `verb` `resource` in `namespace` ("" = all)?"""

    verb: str
    resource: str  # plural.group, e.g. ocirepositories.source.toolkit.fluxcd.io
    namespace: str = ""

    def attributes(self) -> dict[str, str]:
        plural, _, group = self.resource.partition(".")
        attributes = {"verb": self.verb, "group": group, "resource": plural}
        if self.namespace:
            attributes["namespace"] = self.namespace
        return attributes

    def __str__(self) -> str:
        scope = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.resource} {scope}"


_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
_SUMMARY_PREFIXES = ("error:", "Error from server", "Unable to connect", "The connection to the server")
_UNREACHABLE = re.compile(
    r"connection refused|connection reset|Unable to connect to the server|i/o timeout|"
    r"TLS handshake timeout|unexpected EOF|\bEOF\b|server is currently unable|no route to host|"
    r"http2: (server sent GOAWAY|client connection lost)|ServiceUnavailable|context deadline exceeded",
    re.IGNORECASE,
)
_NO_RESOURCE_TYPE = re.compile(r"doesn't have a resource type|the server could not find the requested")


def base_argv(context: str | None) -> list[str]:
    return ["kubectl", f"--context={context}"] if context else ["kubectl"]


def get_argv(
    context: str | None,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    request_timeout_s: float | None = None,
) -> list[str]:
    """`kubectl get RESOURCE [NAME] (-n NS | -A) -o json`; no namespace means all namespaces."""
    argv = [*base_argv(context), "get", resource]
    if name:
        argv.append(name)
    argv += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    return [*argv, "--output=json", *request_timeout(request_timeout_s)]


def request_timeout(seconds: float | None) -> list[str]:
    """`--request-timeout`: each request to the API server gives up after this long by itself, so a
    silent API server (a blackholed route) ends a one-shot read as `Unable to connect to the
    server: context deadline exceeded` (unreachable, retryable). Per request: kubectl's discovery may
    make several, so the caller's timeout of the whole child stays the bound. Never for a watch,
    which it would end."""
    if seconds is None:
        return []
    return [f"--request-timeout={max(1, round(seconds * 1000))}ms"]  # 0 would mean none


def watch_argv(context: str | None, resource: str, namespace: str | None) -> list[str]:
    """One watch over every object of a kind in a namespace (or all namespaces when None).

    kubectl lists first, then watches from there; `--output-watch-events` wraps each object in
    `{"type": ADDED|MODIFIED|DELETED, "object": ...}` so a deleted object is not mistaken for a change.
    """
    scope = [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    return [
        *base_argv(context),
        "get",
        resource,
        *scope,
        "--output=json",
        "--watch",
        "--output-watch-events",
    ]


def annotate_argv(
    context: str | None,
    resource: str,
    namespace: str,
    names: Sequence[str],
    requested_at: str,
    *,
    request_timeout_s: float | None = None,
) -> list[str]:
    """Ask Flux to reconcile now: the annotation `flux reconcile` writes, without its 2 s polling.

    Several objects of one namespace take one call.
    """
    return [
        *base_argv(context),
        "annotate",
        resource,
        *names,
        f"--namespace={namespace}",
        "--overwrite",
        f"--field-manager={FIELD_MANAGER}",
        *request_timeout(request_timeout_s),
        f"{RECONCILE_ANNOTATION}={requested_at}",
    ]


def readyz_argv(context: str | None, timeout_s: float) -> list[str]:
    """The cheapest question an API server answers: is it ready? (`ok`); bounded by the server's
    own request timeout, so a silent server ends the call by itself."""
    return [*base_argv(context), "get", "--raw=/readyz", f"--request-timeout={max(timeout_s, 0.1):g}s"]


def access_review_argv(context: str | None, *, request_timeout_s: float | None = None) -> list[str]:
    """Create the SelfSubjectAccessReviews read from stdin (a List) in one call; prints the answers.

    `--validate=false`: kubectl would first download the API server's whole OpenAPI document (MBs
    with the Flux CRDs; seconds on a busy API server) to check a List flux-ci wrote itself; the API
    server validates it anyway."""
    argv = [*base_argv(context), "create", "--filename=-", "--validate=false", "--output=json"]
    return [*argv, *request_timeout(request_timeout_s)]


def access_reviews_document(checks: Sequence[AccessCheck]) -> str:
    """The List of SelfSubjectAccessReviews asking the API server about each check, as JSON."""
    items = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": check.attributes()},
        }
        for check in checks
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def parse_access_reviews(stdout: str, checks: Sequence[AccessCheck]) -> dict[AccessCheck, bool]:
    """Each check's answer; kubectl prints the created reviews one JSON document after another, in
    the order they were sent."""
    reviews = [item for document in iter_json_documents([stdout]) for item in _items(document)]
    if len(reviews) != len(checks):
        msg = f"expected {len(checks)} access reviews, kubectl returned {len(reviews)}"
        raise ValueError(msg)
    return {
        check: bool(review.get("status", {}).get("allowed"))
        for check, review in zip(checks, reviews, strict=True)
    }


def version_argv() -> list[str]:
    return ["kubectl", "version", "--client", "--output=json"]


def parse_version(stdout: str) -> str:
    return str(json.loads(stdout)["clientVersion"]["gitVersion"]).removeprefix("v")


def parse_items(stdout: str) -> list[dict[str, Any]]:
    """The objects of a `kubectl get -o json` answer (a List, or one object)."""
    return _items(json.loads(stdout))


def _items(data: dict[str, Any]) -> list[dict[str, Any]]:
    if str(data.get("kind", "")).endswith("List"):
        return list(data.get("items", []))
    return [data]


def iter_json_documents(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Split the concatenated, pretty-printed JSON objects of `kubectl get --watch -o json`.

    Linear in what it reads. With `--output-watch-events` kubectl prints each event on one line,
    which is parsed once. Without it, documents are pretty-printed: every nested line is indented,
    so a document can only end on a line that starts with `}`, and only then is the collected text
    parsed, once. Input that is not cut at line ends (tests feed arbitrary chunks) is re-split.
    """
    pending: list[str] = []
    partial = ""
    for chunk in lines:
        partial += chunk
        if "\n" not in partial:
            continue
        *complete, partial = partial.split("\n")
        for line in complete:
            document = _take_line(pending, line)
            if document is not None:
                yield document
    if partial:
        document = _take_line(pending, partial)
        if document is not None:
            yield document


def _take_line(pending: list[str], line: str) -> dict[str, Any] | None:
    if not pending:
        if not line.strip():
            return None
        if line.startswith("{") and line.rstrip().endswith("}"):  # a whole document on one line
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                pass
            else:
                return document if isinstance(document, dict) else None
    pending.append(line)
    if not line.startswith("}"):
        return None
    try:
        document = json.loads("\n".join(pending))
    except json.JSONDecodeError:
        return None  # a `}` inside a multi-line string value: keep collecting
    pending.clear()
    return document if isinstance(document, dict) else None


def watch_event(document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(type, object) of a `--output-watch-events` document; a bare object counts as MODIFIED."""
    if "object" in document and "type" in document:
        return str(document["type"]), dict(document["object"])
    return "MODIFIED", document


def missing_resource_type(stderr: str) -> bool:
    """True when the API has no such kind (e.g. HelmRelease without helm-controller's CRDs)."""
    return bool(_NO_RESOURCE_TYPE.search(stderr))


def failure(what: str, stderr: str) -> ClusterError:
    """kubectl's own message, as a cluster error (exit 5); a connection problem is worth a retry."""
    return ClusterError(f"{what} failed: {_explain(_message(stderr))}", retryable=unreachable(stderr))


def unreachable(stderr: str) -> bool:
    """The API server could not be reached or dropped us: transient, unlike a refusal or a 404."""
    return bool(_UNREACHABLE.search(stderr))


def forbidden(stderr: str) -> bool:
    return "forbidden" in stderr.lower() and not unreachable(stderr)


def _message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # client-go's klog lines ("E1126 10:17:31.75 ... memcache.go:265] ...") repeat the cause noisily;
    # kubectl's own summary line follows them.
    own = [line for line in lines if not _KLOG_LINE.match(line)]
    for line in own:
        if line.startswith(_SUMMARY_PREFIXES):
            return line.removeprefix("error: ")
    if own:
        return own[-1].removeprefix("error: ")
    return lines[-1] if lines else "no error output"


def _explain(message: str) -> str:
    if "Unauthorized" in message or "provide credentials" in message:
        return f"{message} (the kubeconfig's credentials were refused)"
    if "Forbidden" in message or "forbidden" in message:
        return f"{message} (the kubeconfig's user lacks RBAC permission)"
    return message


def events_argv(context: str | None, namespace: str) -> list[str]:
    """Every Event of one namespace (`kubectl get events -n NS -o json`); filtered by the caller."""
    return get_argv(context, "events", namespace=namespace)


def resource_name(kind: str, group: str) -> str:
    """kubectl's name for a kind of an API group: `Deployment.apps`, or `ConfigMap` for the core group."""
    return f"{kind}.{group}" if group else kind


def parse_events(stdout: str) -> list[dict[str, Any]]:
    """The Events of a `kubectl get events -o json` answer."""
    return [item for item in parse_items(stdout) if item.get("kind", "Event") == "Event"]


def events_watch_argv(context: str | None, namespace: str | None) -> list[str]:
    """New Events of one namespace (or all namespaces when None), one JSON event per line.

    `--watch-only` skips kubectl's initial list, which is history: kubectl still lists first, for
    the resourceVersion to watch from, but prints only what happens after that.
    """
    scope = [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    return [
        *base_argv(context),
        "get",
        "events",
        *scope,
        "--output=json",
        "--watch-only",
        "--output-watch-events",
    ]


# --- a notification-controller Receiver ----------------------------------------------------------

RECEIVERS = "receivers.notification.toolkit.fluxcd.io"
# How much of `status.webhookPath` is read: `/hook/` and 16 of its 64 hex digits. Enough to tell a
# wrong token (a 1 in 2^64 chance to miss one), too little to call the webhook with: for a `generic`
# Receiver the path is the credential, and what kubectl prints may reach the trace (-vv). For the
# same reason the Ready message (it quotes the whole path) is read only when the Receiver is not Ready.
WEBHOOK_PATH_READ = len("/hook/") + 16
# One line, fields separated by tabs: type, suspended|active, the path's start, then Ready's
# status, reason and (when not True) message; empty fields where the Receiver has no status yet.
_RECEIVER_TEMPLATE = (
    '{{.spec.type}}{{"\\t"}}{{if .spec.suspend}}suspended{{else}}active{{end}}{{"\\t"}}'
    "{{with .status}}{{with .webhookPath}}"
    f"{{{{if ge (len .) {WEBHOOK_PATH_READ}}}}}{{{{slice . 0 {WEBHOOK_PATH_READ}}}}}"
    "{{else}}{{.}}{{end}}"
    '{{end}}{{end}}{{"\\t"}}'
    '{{with .status}}{{range .conditions}}{{if eq .type "Ready"}}{{.status}}{{"\\t"}}{{.reason}}{{"\\t"}}'
    '{{if ne .status "True"}}{{.message}}{{end}}{{end}}{{end}}{{end}}{{"\\n"}}'
)


@dataclass(frozen=True)
class ReceiverView:
    """What flux-ci reads of a Receiver: what notification-controller's handler itself looks at
    (the webhook path its index finds the Receiver by, `spec.suspend`, the Ready condition) and the
    type, which decides how a request is validated. Never the whole path (see WEBHOOK_PATH_READ)."""

    type: str
    suspended: bool
    path_start: str  # the first WEBHOOK_PATH_READ characters of status.webhookPath; "" without one
    ready: str  # the Ready condition's status: "True", "False", "Unknown"; "" without one
    reason: str = ""
    message: str = ""  # only when not Ready


def receiver_argv(context: str | None, namespace: str, name: str) -> list[str]:
    """`kubectl get` of one Receiver, printing only what `ReceiverView` holds."""
    return [
        *base_argv(context),
        "get",
        RECEIVERS,
        name,
        f"--namespace={namespace}",
        f"--output=go-template={_RECEIVER_TEMPLATE}",
    ]


def parse_receiver(stdout: str) -> ReceiverView:
    fields = [*stdout.removesuffix("\n").split("\t", 5), "", "", "", "", "", ""][:6]
    kind, suspend, path_start, ready, reason, message = fields
    return ReceiverView(kind, suspend == "suspended", path_start, ready, reason, message)
