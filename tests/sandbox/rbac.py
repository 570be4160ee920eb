"""flux-ci's minimal Role (examples/rbac/flux-ci.yaml), bound to one user in one namespace.

The sandbox applies the very file users apply, so a test that deploys through the resulting context
proves that the published Role is enough (and no more than needed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.sandbox.versions import REPO_ROOT

ROLE_FILE = REPO_ROOT / "examples" / "rbac" / "flux-ci.yaml"
CLUSTER_READ_FILE = REPO_ROOT / "examples" / "rbac" / "flux-ci-cluster-read.yaml"
RBAC_GROUP = "rbac.authorization.k8s.io"
_NAMESPACED_KINDS = ("Role", "RoleBinding")


def json_documents(text: str) -> Iterator[dict[str, Any]]:
    """The objects in kubectl's JSON output: one or more documents, each possibly a List."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        document, position = decoder.raw_decode(text, position)
        if document.get("kind") == "List":
            yield from document.get("items", [])
        else:
            yield document


def namespaced_objects(kubectl_json: str, *, namespace: str, user: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding of the file, moved into `namespace` and bound to `user` alone."""
    objects = [obj for obj in json_documents(kubectl_json) if obj.get("kind") in _NAMESPACED_KINDS]
    if not any(obj["kind"] == "Role" for obj in objects):
        raise ValueError("the RBAC manifest holds no Role")
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
        if obj["kind"] == "RoleBinding":
            obj["subjects"] = [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}]
    return objects


def cluster_objects(kubectl_json: str, *, user: str) -> list[dict[str, Any]]:
    """The ClusterRole and ClusterRoleBinding of a file, the binding's subject replaced by `user`.

    The binding's name gets the user appended, so bindings for several users can coexist.
    """
    objects = [
        obj
        for obj in json_documents(kubectl_json)
        if obj.get("kind") in ("ClusterRole", "ClusterRoleBinding")
    ]
    for obj in objects:
        if obj["kind"] == "ClusterRoleBinding":
            obj["metadata"]["name"] = f"{obj['metadata']['name']}-{_label(user)}"
            obj["subjects"] = [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}]
    return objects


def _label(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
