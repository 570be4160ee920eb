"""The `kubectl` CLI: JSON reads, watches, the reconcile annotation, and error classification.

All kubectl failures exit 1, so the cause is read from the message (`Error from server (NotFound)`,
`Unable to connect to the server`, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from flux_ci.errors import ClusterError, FluxCIError

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

_KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
_SUMMARY_PREFIXES = ("error:", "Error from server", "Unable to connect", "The connection to the server")
_NO_RESOURCE_TYPE = re.compile(r"doesn't have a resource type|the server could not find the requested")


def base_argv(context: str | None) -> list[str]:
    return ["kubectl", f"--context={context}"] if context else ["kubectl"]


def get_argv(
    context: str | None, resource: str, *, namespace: str | None = None, name: str | None = None
) -> list[str]:
    """`kubectl get RESOURCE [NAME] (-n NS | -A) -o json`; no namespace means all namespaces."""
    argv = [*base_argv(context), "get", resource]
    if name:
        argv.append(name)
    argv += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    return [*argv, "--output=json"]


def watch_argv(context: str | None, resource: str, namespace: str, name: str) -> list[str]:
    """A watch that prints the object now and again on every change, as concatenated JSON."""
    return [
        *base_argv(context),
        "get",
        resource,
        name,
        f"--namespace={namespace}",
        "--output=json",
        "--watch",
    ]


def annotate_argv(
    context: str | None, resource: str, namespace: str, name: str, requested_at: str
) -> list[str]:
    """Ask Flux to reconcile now: the same annotation `flux reconcile` writes, without its wait."""
    return [
        *base_argv(context),
        "annotate",
        resource,
        name,
        f"--namespace={namespace}",
        "--overwrite",
        f"--field-manager={FIELD_MANAGER}",
        f"{RECONCILE_ANNOTATION}={requested_at}",
    ]


def version_argv() -> list[str]:
    return ["kubectl", "version", "--client", "--output=json"]


def parse_version(stdout: str) -> str:
    return str(json.loads(stdout)["clientVersion"]["gitVersion"]).removeprefix("v")


def parse_items(stdout: str) -> list[dict[str, Any]]:
    """The objects of a `kubectl get -o json` answer (a List, or one object)."""
    data = json.loads(stdout)
    if data.get("kind", "").endswith("List"):
        return list(data.get("items", []))
    return [data]


def iter_json_documents(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Split the concatenated, pretty-printed JSON objects of `kubectl get --watch -o json`."""
    decoder = json.JSONDecoder()
    buffer = ""
    for line in lines:
        buffer += line
        while True:
            stripped = buffer.lstrip()
            if not stripped:
                buffer = ""
                break
            try:
                document, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buffer = stripped  # incomplete: wait for more lines
                break
            buffer = stripped[end:]
            if isinstance(document, dict):
                yield document


def missing_resource_type(stderr: str) -> bool:
    """True when the API has no such kind (e.g. HelmRelease without helm-controller's CRDs)."""
    return bool(_NO_RESOURCE_TYPE.search(stderr))


def failure(what: str, stderr: str) -> FluxCIError:
    """kubectl's own message, as a cluster error (exit 5)."""
    return ClusterError(f"{what} failed: {_explain(_message(stderr))}")


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
