from __future__ import annotations

import pytest

from flux_ci.errors import ClusterError
from flux_ci.tools import kubectl
from tests.golden import text


def test_get_all_namespaces_asks_for_json() -> None:
    argv = kubectl.get_argv(None, kubectl.OCIREPOSITORIES)
    assert argv == ["kubectl", "get", kubectl.OCIREPOSITORIES, "--all-namespaces", "--output=json"]


def test_context_goes_first_and_names_scope() -> None:
    argv = kubectl.get_argv("grp/proj:agent", kubectl.KUSTOMIZATIONS, namespace="apps", name="web")
    assert argv == ["kubectl", "--context=grp/proj:agent", "get", kubectl.KUSTOMIZATIONS, "web",
                    "--namespace=apps", "--output=json"]  # fmt: skip


def test_annotate_writes_flux_reconcile_annotation() -> None:
    argv = kubectl.annotate_argv(None, kubectl.OCIREPOSITORIES, "ns", "app", "2026-01-01T00:00:00.1Z")
    assert argv[-1] == "reconcile.fluxcd.io/requestedAt=2026-01-01T00:00:00.1Z"
    assert "--overwrite" in argv
    assert "--field-manager=flux-client-side-apply" in argv


def test_watch_is_a_json_watch_of_one_object() -> None:
    argv = kubectl.watch_argv(None, kubectl.OCIREPOSITORIES, "ns", "app")
    assert argv[-3:] == ["--namespace=ns", "--output=json", "--watch"]


def test_parse_list_and_single_object() -> None:
    items = kubectl.parse_items(text("kubectl/ocirepositories-list.json"))
    assert [item["metadata"]["name"] for item in items] == ["app"]
    single = kubectl.parse_items(text("kubectl/ocirepository-ready.json"))
    assert single[0]["kind"] == "OCIRepository"


def test_watch_stream_splits_into_objects_whatever_the_line_breaks() -> None:
    stream = text("kubectl/ocirepository-watch.stdout")
    whole = list(kubectl.iter_json_documents(stream.splitlines(keepends=True)))
    assert [doc["kind"] for doc in whole] == ["OCIRepository"]
    twice = stream + stream
    chunks = [twice[i : i + 7] for i in range(0, len(twice), 7)]  # arbitrary cuts mid-token
    assert len(list(kubectl.iter_json_documents(chunks))) == 2


def test_parse_version_of_real_kubectl() -> None:
    assert kubectl.parse_version(text("kubectl/version.json")) == "1.36.3"


def test_missing_crd_is_recognised() -> None:
    assert kubectl.missing_resource_type(text("kubectl/get-no-resource-type.stderr"))
    assert not kubectl.missing_resource_type(text("kubectl/get-not-found.stderr"))


@pytest.mark.parametrize(
    ("golden", "expected"),
    [
        ("kubectl/get-unreachable.stderr", "The connection to the server 127.0.0.1:1 was refused"),
        ("kubectl/get-unauthorized.stderr", "You must be logged in to the server"),
        (
            "kubectl/get-not-found.stderr",
            'Error from server (NotFound): ocirepositories.source.toolkit.fluxcd.io "nope"',
        ),
    ],
)
def test_failures_are_cluster_errors_with_kubectl_own_words(golden: str, expected: str) -> None:
    error = kubectl.failure("listing", text(golden))
    assert isinstance(error, ClusterError)
    assert expected in error.message
    assert "memcache.go" not in error.message  # klog noise is not the message


def test_unauthorized_is_explained() -> None:
    assert "credentials were refused" in kubectl.failure("x", text("kubectl/get-unauthorized.stderr")).message
