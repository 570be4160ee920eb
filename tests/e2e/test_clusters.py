"""FLUX_CI_KUBE_CONTEXT with two contexts: two real API servers with their own controllers, one
registry. One push, both clusters waited for at once, each outcome reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient, condition

pytestmark = pytest.mark.e2e


@pytest.fixture
def both(project: Project, second_cluster: SandboxClient) -> Iterator[str]:
    """The project's OCIRepository and Kustomization in cluster 2 too; FLUX_CI_KUBE_CONTEXT for both."""
    second_cluster.create_namespace(project.namespace)
    second_cluster.deploy_oci(
        project.namespace, "app", project.repository, tag="latest", target_namespace=project.namespace
    )
    yield f"{project.sandbox.context},{second_cluster.context}"
    second_cluster.delete_namespace(project.namespace)


def applied(client: SandboxClient, namespace: str, digest: str) -> bool:
    kustomization = client.get_json("kustomizations.kustomize.toolkit.fluxcd.io", "app", namespace)
    ready = condition(kustomization, "Ready") or {}
    revision = str(kustomization["status"].get("lastAppliedRevision", ""))
    return revision.endswith(digest) and ready.get("status") == "True"


def test_one_push_applied_in_both_clusters(
    project: Project, second_cluster: SandboxClient, both: str, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=both, FLUX_CI_DOTENV=str(dotenv)))

    assert run.exit_code == 0, run.stderr
    report = run.json()
    digest = report["artifact"]["digest"]
    contexts = both.split(",")
    assert [(c["context"], c["status"], c["exit_code"]) for c in report["clusters"]] == [
        (contexts[0], "succeeded", 0),
        (contexts[1], "succeeded", 0),
    ]
    assert sorted(row["cluster"] for row in report["consumers"]) == sorted(contexts)
    assert applied(project.sandbox, project.namespace, digest)
    assert applied(second_cluster, project.namespace, digest)
    assert [step["name"] for step in report["steps"]].count("push") == 1  # pushed once
    assert f"FLUX_CI_CLUSTERS_SUCCEEDED={both}" in dotenv.read_text()
    assert f"[{contexts[1]}] ✔ wait done" in run.stderr  # every progress line names its cluster


def test_the_clusters_are_waited_for_at_once_not_one_after_the_other(
    project: Project, second_cluster: SandboxClient, both: str
) -> None:
    """The first cluster's kustomize-controller is frozen: the second cluster still finishes. In
    turns, cluster 2 would not even be asked before cluster 1 is done."""
    first, second = both.split(",")
    with project.sandbox.paused("kustomize-controller"):
        running = project.start("-v", "deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=both))
        running.wait_for_line(f"[{second}] ✔ wait done", timeout=90)
        assert running.process.poll() is None  # still waiting for the frozen cluster
    run = running.finish()

    assert run.exit_code == 0, run.stderr
    assert {c["context"]: c["status"] for c in run.json()["clusters"]} == {
        first: "succeeded",
        second: "succeeded",
    }


def test_a_consumer_failing_in_one_cluster_is_7_and_the_other_is_reported_succeeded(
    project: Project, second_cluster: SandboxClient, both: str
) -> None:
    first, second = both.split(",")
    second_cluster.kubectl(
        "patch", "kustomizations.kustomize.toolkit.fluxcd.io", "app", "-n", project.namespace,
        "--type=merge", '--patch={"spec": {"path": "./missing"}}',
    )  # fmt: skip
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_KUBE_CONTEXT=both))

    assert run.exit_code == 7, run.stderr
    report = run.json()
    outcomes = {c["context"]: (c["status"], c["exit_code"]) for c in report["clusters"]}
    assert outcomes == {first: ("succeeded", 0), second: ("failed", 7)}
    assert report["error"]["code"] == "consumer_failed"
    assert f"cluster {second}: " in report["error"]["message"]
    assert f"succeeded in: {first}" in report["error"]["message"]
    assert applied(project.sandbox, project.namespace, report["artifact"]["digest"])
    assert [d["cluster"] for d in report["diagnostics"]] == [second]


def test_an_unreachable_cluster_is_5_before_anything_is_pushed_and_the_other_is_reported(
    project: Project, tmp_path: Path
) -> None:
    """A context whose API server does not answer (a closed port): its preflight fails, so nothing
    is pushed anywhere, and the reachable cluster is reported as not deployed."""
    kubeconfig = json.loads(project.sandbox.kubeconfig.read_text())
    gone = {**kubeconfig["clusters"][0]["cluster"], "server": "https://127.0.0.1:9"}
    kubeconfig["clusters"].append({"name": "gone", "cluster": gone})
    kubeconfig["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": "admin"}})
    private = tmp_path / "kubeconfig"
    private.write_text(json.dumps(kubeconfig))
    env = project.env(FLUX_CI_KUBE_CONTEXT=f"{project.sandbox.context},gone", KUBECONFIG=str(private))

    run = project.flux_ci("deploy", env=env)

    assert run.exit_code == 5, run.stderr
    report = run.json()
    outcomes = {c["context"]: c["status"] for c in report["clusters"]}
    assert outcomes == {project.sandbox.context: "not-deployed", "gone": "failed"}
    assert "cluster gone: " in report["error"]["message"]
    assert project.absent("c1")  # preflight in every cluster comes before the push


def test_doctor_and_status_look_at_every_cluster(
    project: Project, second_cluster: SandboxClient, both: str
) -> None:
    first, second = both.split(",")
    doctor = project.flux_ci("doctor", env=project.env(FLUX_CI_KUBE_CONTEXT=both))
    assert doctor.exit_code == 0, doctor.stdout
    checks = {check["name"]: check["ok"] for check in doctor.json()["checks"]}
    assert checks[f"cluster and sources ({first})"]
    assert checks[f"cluster and sources ({second})"]

    status = project.flux_ci("status", env=project.env(FLUX_CI_KUBE_CONTEXT=both))
    assert status.exit_code == 0, status.stderr
    assert sorted((row["cluster"], row["name"]) for row in status.json()["sources"]) == [
        (first, "app"),
        (second, "app"),
    ]


def test_a_cluster_lost_mid_wait_is_5_at_the_deadline_and_the_other_is_reported_succeeded(
    project: Project, second_cluster: SandboxClient, both: str
) -> None:
    """Cluster 2 passes its preflight, then its API server goes away while flux-ci waits there."""
    first, second = both.split(",")
    env = project.env(FLUX_CI_KUBE_CONTEXT=both, FLUX_CI_TIMEOUT="20s")
    run = project.deploy_losing_the_api_server(second_cluster, env, waiting=f"[{second}] ▶ wait")

    assert run.exit_code == 5, run.stderr
    report = run.json()
    outcomes = {c["context"]: (c["status"], c["exit_code"]) for c in report["clusters"]}
    assert outcomes == {first: ("succeeded", 0), second: ("failed", 5)}
    assert "still unreachable at the deadline" in report["error"]["message"]
    assert f"succeeded in: {first}" in report["error"]["message"]
    assert report["error"]["retryable"] is True
    assert applied(project.sandbox, project.namespace, report["artifact"]["digest"])
