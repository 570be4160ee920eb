"""The forms of values (flux_ci/config/values.py), message by message: a person reads these to fix
a variable, and `make mutation` changes each rule to check a test notices."""

from __future__ import annotations

import pytest

from flux_ci.config import values
from flux_ci.report.models import ObjectRef


def _refused(check: object, *args: object) -> str:
    with pytest.raises(ValueError) as raised:  # noqa: PT011 - the message is checked whole
        check(*args)  # type: ignore[operator]
    return str(raised.value)


def test_receiver_url_is_the_webhook_servers_base_url() -> None:
    assert values.receiver_url(" https://hooks.example:9292/base/ ") == "https://hooks.example:9292/base"
    assert values.receiver_url("http://127.0.0.1:9292") == "http://127.0.0.1:9292"
    assert _refused(values.receiver_url, "https://ci:s3cret@hooks.example") == (
        "contains credentials (user:password@): the Receiver authenticates with FLUX_CI_RECEIVER_TOKEN"
    )
    shape = "must be http(s)://<host>[:<port>][/<base path>] (the Receiver webhook server)"
    assert _refused(values.receiver_url, "ftp://hooks.example") == f"'ftp://hooks.example' {shape}"
    assert _refused(values.receiver_url, "https://") == f"'https://' {shape}"
    base = "must be the webhook server's base URL, without /hook/..., query or fragment"
    for bad in ("https://h.example/hook/abc", "https://h.example/x?a=1", "https://h.example/x#f"):
        assert _refused(values.receiver_url, bad) == f"{bad!r} {base}"
    assert values.receiver_url("https://h.example/hooks") == "https://h.example/hooks"  # not /hook/


def test_oci_repository_forms() -> None:
    assert values.oci_repository("r.example:5000/group/app/") == "oci://r.example:5000/group/app"
    assert values.oci_repository("oci://[::1]:5000/a_b/c.d/e--f") == "oci://[::1]:5000/a_b/c.d/e--f"
    assert _refused(values.oci_repository, "r.example/app@sha256:abc") == (
        "'r.example/app@sha256:abc' must not include a tag or digest (set FLUX_CI_TAG instead)"
    )
    assert _refused(values.oci_repository, "r.example/group/app:v1") == (
        "'r.example/group/app:v1' must not include a tag or digest (set FLUX_CI_TAG instead)"
    )
    assert values.oci_repository("r.example:5000/app") == "oci://r.example:5000/app"  # the port is no tag
    assert _refused(values.oci_repository, "r.example/App") == (
        "'r.example/App': path component 'App' must be lowercase letters and digits, "
        "separated by one of . _ -"
    )
    assert (
        _refused(values.oci_repository, "-bad-/app") == "'-bad-/app': '-bad-' is not a registry host[:port]"
    )
    assert _refused(values.oci_repository, "r.example") == "'r.example' must be oci://<registry>/<path>"


def test_kube_contexts_and_namespaced_names() -> None:
    assert values.kube_contexts(" a , b ") == "a,b"
    assert _refused(values.kube_contexts, "a,,b") == (
        "'a,,b': a comma-separated list of kube context names must not hold an empty name"
    )
    assert _refused(values.kube_contexts, "a,a") == "'a,a' names a context twice"
    assert values.namespaced_name("apps/ci") == "apps/ci"
    assert values.namespaced_name("ci") == "ci"
    assert _refused(values.namespaced_name, "a/b/c") == "'a/b/c' must be [namespace/]name"
    assert _refused(values.namespaced_name, "/ci") == "'/ci' must be [namespace/]name"
    assert _refused(values.namespaced_name, "Apps/ci").startswith(
        "'Apps/ci': 'Apps' is not a valid namespace"
    )
    assert _refused(values.namespaced_name, "apps/C_I").startswith(
        "'apps/C_I': 'C_I' is not a valid Kubernetes"
    )


def test_names_are_quoted_alone_or_within_the_value_they_came_from() -> None:
    assert _refused(values.check_name, "Bad", "Bad") == (
        "'Bad' is not a valid Kubernetes name "
        "(lowercase letters, digits, - and ., starting and ending with a letter or digit)"
    )
    assert _refused(values.check_namespace, "Bad", "Kustomization/Bad/app") == (
        "'Kustomization/Bad/app': 'Bad' is not a valid namespace "
        "(lowercase letters, digits and -, at most 63, starting and ending with a letter or digit)"
    )
    assert _refused(values.check_tags, ["ok", ".no", "-no"]) == (
        "'.no', '-no': not a valid OCI tag (letters, digits, _ . -, at most 128, not starting with . or -)"
    )


def test_wait_for_and_object_references() -> None:
    assert values.wait_for(["none"]) == []
    assert values.wait_for(["Kustomization/apps/web"]) == ["Kustomization/apps/web"]
    assert _refused(values.wait_for, ["none", "Kustomization/a"]) == (
        "'none,Kustomization/a': none means wait for no consumer and must stand alone"
    )
    assert _refused(values.wait_for, []) == "is empty: list Kind/namespace/name items, or write none"
    assert _refused(values.wait_for, ["Job/x", "Kustomization/a/b/c"]) == (
        "'Job/x': kind must be Kustomization or HelmRelease; "
        "'Kustomization/a/b/c' must be Kind/namespace/name or Kind/name, e.g. Kustomization/flux-system/apps"
    )
    assert values.parse_object_ref(" helmrelease/web ", "apps") == ObjectRef("HelmRelease", "apps", "web")
    assert _refused(values.parse_object_ref, "Kustomization/Apps/web", "x").startswith(
        "'Kustomization/Apps/web': 'Apps' is not a valid namespace"
    )
    assert _refused(values.parse_object_ref, "Kustomization/apps/Web", "x").startswith(
        "'Kustomization/apps/Web': 'Web' is not a valid Kubernetes name"
    )


def test_extra_tags_digests_sources_and_choices() -> None:
    assert values.extra_tags(["latest", "main", "latest"]) == ["latest", "main"]
    assert values.extra_tags(["None"]) == []
    assert (
        _refused(values.extra_tags, ["none", "main"])
        == "'none,main': none means no extra tags and must stand alone"
    )
    assert _refused(values.extra_tags, []) == "is empty: list tags such as latest,main, or write none"
    assert values.digest("sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert _refused(values.digest, "sha256:abc") == "'sha256:abc' is not a sha256:<64 hex> digest"
    assert values.source_url("git@host:group/app") == "git@host:group/app"  # a user, no credential
    assert _refused(values.source_url, "https://u:p@git.example/app") == (
        "contains credentials (user:password@): the source annotation is public, give the URL without them"
    )
    assert values.choice("  JSON ") == "json"
    assert values.choice(None) is None
    assert values.comma_list(" a, ,b ") == ["a", "b"]
    assert values.comma_list(["x"]) == ["x"]


def test_where_a_tag_or_digest_is_looked_for_in_a_repository() -> None:
    tagged = "must not include a tag or digest (set FLUX_CI_TAG instead)"
    assert _refused(values.oci_repository, "r.example/app@latest") == f"'r.example/app@latest' {tagged}"
    component = "must be lowercase letters and digits, separated by one of . _ -"
    # A colon in an earlier path component is a bad component, not a tag: only the last may carry one.
    assert (
        _refused(values.oci_repository, "r.example/a:b/c")
        == f"'r.example/a:b/c': path component 'a:b' {component}"
    )
    assert _refused(values.oci_repository, "r.example/a/b:c/d") == (
        f"'r.example/a/b:c/d': path component 'b:c' {component}"
    )
    assert (
        _refused(values.oci_repository, "r.example/apX")
        == f"'r.example/apX': path component 'apX' {component}"
    )
    assert values.receiver_url("https://h.example/X") == "https://h.example/X"  # only slashes are trimmed
