from __future__ import annotations

import json

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


def test_annotate_writes_flux_reconcile_annotation_on_several_objects_at_once() -> None:
    argv = kubectl.annotate_argv(None, kubectl.OCIREPOSITORIES, "ns", ["a", "b"], "2026-01-01T00:00:00.1Z")
    assert argv[:5] == ["kubectl", "annotate", kubectl.OCIREPOSITORIES, "a", "b"]
    assert argv[-1] == "reconcile.fluxcd.io/requestedAt=2026-01-01T00:00:00.1Z"
    assert "--overwrite" in argv
    assert "--field-manager=flux-client-side-apply" in argv


def test_one_watch_covers_a_kind_in_a_namespace_or_everywhere() -> None:
    argv = kubectl.watch_argv(None, kubectl.OCIREPOSITORIES, "ns")
    assert argv == ["kubectl", "get", kubectl.OCIREPOSITORIES, "--namespace=ns", "--output=json",
                    "--watch", "--output-watch-events"]  # fmt: skip
    assert "--all-namespaces" in kubectl.watch_argv(None, kubectl.KUSTOMIZATIONS, None)


def test_watch_events_come_one_per_line_from_the_real_kubectl() -> None:
    stream = text("kubectl/watch-events-ocirepositories.stdout")
    assert stream.count("\n") == 1  # --output-watch-events prints compact JSON, one event a line
    events = [
        kubectl.watch_event(doc) for doc in kubectl.iter_json_documents(stream.splitlines(keepends=True))
    ]
    assert [(kind, obj["kind"]) for kind, obj in events] == [("ADDED", "OCIRepository")]


def test_watch_events_unwrap_and_a_bare_object_counts_as_modified() -> None:
    source = {"kind": "OCIRepository", "metadata": {"name": "a"}}
    assert kubectl.watch_event({"type": "DELETED", "object": source}) == ("DELETED", source)
    assert kubectl.watch_event(source) == ("MODIFIED", source)


def test_access_reviews_go_in_one_list_and_come_back_in_order() -> None:
    checks = [
        kubectl.AccessCheck("list", kubectl.KUSTOMIZATIONS),
        kubectl.AccessCheck("patch", kubectl.OCIREPOSITORIES, "apps"),
    ]
    sent = json.loads(kubectl.access_reviews_document(checks))
    assert [item["spec"]["resourceAttributes"] for item in sent["items"]] == [
        {"verb": "list", "group": "kustomize.toolkit.fluxcd.io", "resource": "kustomizations"},
        {
            "verb": "patch",
            "group": "source.toolkit.fluxcd.io",
            "resource": "ocirepositories",
            "namespace": "apps",
        },
    ]
    answers = kubectl.parse_access_reviews(text("kubectl/access-reviews.json"), checks)
    assert answers == {checks[0]: True, checks[1]: False}
    assert str(checks[1]) == "patch ocirepositories.source.toolkit.fluxcd.io in namespace apps"
    with pytest.raises(ValueError, match="expected 1 access reviews"):
        kubectl.parse_access_reviews(text("kubectl/access-reviews.json"), checks[:1])


def test_parse_list_and_single_object() -> None:
    items = kubectl.parse_items(text("kubectl/ocirepositories-list.json"))
    assert [item["metadata"]["name"] for item in items] == ["app"]
    single = kubectl.parse_items(text("kubectl/ocirepository-ready.json"))
    assert single[0]["kind"] == "OCIRepository"
    consumers = kubectl.parse_items(text("kubectl/kustomizations-list.json"))
    assert consumers
    assert {item["kind"] for item in consumers} == {"Kustomization"}


def test_watch_stream_splits_into_objects_whatever_the_line_breaks() -> None:
    stream = text("kubectl/ocirepository-watch.stdout")
    whole = list(kubectl.iter_json_documents(stream.splitlines(keepends=True)))
    assert [doc["kind"] for doc in whole] == ["OCIRepository"]
    twice = stream + stream
    chunks = [twice[i : i + 7] for i in range(0, len(twice), 7)]  # arbitrary cuts mid-token
    assert len(list(kubectl.iter_json_documents(chunks))) == 2


def test_decoding_a_watch_event_is_linear_in_its_size() -> None:
    # A Kustomization with a large inventory: one event must not be re-parsed line after line.
    inventory = [{"id": f"ns_cm-{i}__ConfigMap", "v": "v1"} for i in range(5000)]
    event = {
        "type": "MODIFIED",
        "object": {"kind": "Kustomization", "status": {"inventory": {"entries": inventory}}},
    }
    lines = (json.dumps(event, indent=4) + "\n").splitlines(keepends=True)  # as kubectl prints it
    calls = 0
    real_loads = json.loads

    def counting_loads(text: str) -> object:
        nonlocal calls
        calls += 1
        return real_loads(text)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json, "loads", counting_loads)
        decoded = list(kubectl.iter_json_documents(lines * 2))
    assert len(decoded) == 2
    assert calls == 2  # one parse per document, whatever its length


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


def test_unreachable_is_retryable_and_forbidden_is_not() -> None:
    assert kubectl.failure("x", text("kubectl/get-unreachable.stderr")).retryable
    assert not kubectl.failure("x", text("kubectl/get-unauthorized.stderr")).retryable
    assert kubectl.forbidden(text("kubectl/get-forbidden.stderr"))
    assert not kubectl.forbidden(text("kubectl/get-unreachable.stderr"))


def test_unauthorized_is_explained() -> None:
    assert "credentials were refused" in kubectl.failure("x", text("kubectl/get-unauthorized.stderr")).message


# --- a Receiver: only what notification-controller's handler looks at, never its whole path -------


def test_a_receiver_is_read_through_a_template_that_never_prints_its_whole_path() -> None:
    argv = kubectl.receiver_argv("ctx", "golden", "ci")
    assert argv[:6] == ["kubectl", "--context=ctx", "get", kubectl.RECEIVERS, "ci", "--namespace=golden"]
    assert argv[6].startswith("--output=go-template=")
    assert "slice . 0 22" in argv[6]  # `/hook/` and 16 of the 64 hex digits


def test_a_ready_receiver_golden() -> None:
    view = kubectl.parse_receiver(text("kubectl/receiver-ready.stdout"))
    assert view == kubectl.ReceiverView("generic", False, "/hook/198a8a28ef712cf3", "True", "Succeeded", "")
    assert len(view.path_start) == kubectl.WEBHOOK_PATH_READ


def test_a_suspended_receiver_golden() -> None:
    view = kubectl.parse_receiver(text("kubectl/receiver-suspended.stdout"))
    assert (view.type, view.suspended, view.ready) == ("generic", True, "True")


def test_a_receiver_without_its_secret_golden() -> None:
    view = kubectl.parse_receiver(text("kubectl/receiver-not-ready.stdout"))
    assert view.path_start == ""
    assert (view.ready, view.reason) == ("False", "TokenNotFound")
    assert view.message == (
        "unable to read token from secret 'golden/missing-token' error: secrets \"missing-token\" not found"
    )


def test_a_receiver_not_reconciled_yet_has_empty_fields() -> None:
    assert kubectl.parse_receiver("generic\tactive\t\t\n") == kubectl.ReceiverView("generic", False, "", "")


def test_receiver_read_failures_are_told_apart() -> None:
    assert kubectl.forbidden(text("kubectl/get-receiver-forbidden.stderr"))
    assert not kubectl.forbidden(text("kubectl/get-receiver-missing.stderr"))


# --- one-shot calls end by themselves: --request-timeout ---------------------------------------------


def test_a_request_timeout_is_given_in_milliseconds_and_never_zero() -> None:
    assert kubectl.request_timeout(None) == []
    assert kubectl.request_timeout(12.3456) == ["--request-timeout=12346ms"]
    assert kubectl.request_timeout(0.0001) == ["--request-timeout=1ms"]  # 0 would mean no timeout
    argv = kubectl.get_argv(None, kubectl.KUSTOMIZATIONS, namespace="apps", request_timeout_s=2.5)
    assert argv[-1] == "--request-timeout=2500ms"
    review = kubectl.access_review_argv(None, request_timeout_s=1)
    assert "--request-timeout=1000ms" in review
    annotate = kubectl.annotate_argv(None, kubectl.OCIREPOSITORIES, "ns", ["a"], "t", request_timeout_s=1)
    assert "--request-timeout=1000ms" in annotate
    assert annotate[-1] == "reconcile.fluxcd.io/requestedAt=t"


def test_a_silent_api_server_ends_a_read_as_unreachable_and_retryable() -> None:
    stderr = text("kubectl/get-request-timeout.stderr")  # the real kubectl, --request-timeout=1500ms
    assert kubectl.unreachable(stderr)
    error = kubectl.failure("listing Kustomization objects", stderr)
    assert error.retryable
    assert error.message.endswith("Unable to connect to the server: context deadline exceeded")


# --- what the -vv trace shows: a summary per object, never the object ---------------------------------
