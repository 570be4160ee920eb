"""The sandbox's helm-controller installs charts that an OCIRepository holds (`spec.chartRef`).

These tests pin down what the real helm-controller does with a chart pushed to the sandbox registry,
both as flux-ci pushes it (`flux push artifact` of a directory holding the chart) and as `helm push`
would (a Helm OCI chart, read through a layer selector), and which status fields say which digest a
release came from, with the DisableChartDigestTracking feature gate off and on. They test the
sandbox, not flux-ci.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import SandboxClient, condition
from tests.sandbox.charts import HELM_CHART_LAYER_SELECTOR, INVALID_CONFIGMAP_TEMPLATE, write_chart
from tests.sandbox.client import HelmDeployment
from tests.sandbox.controllers import HELM_SHARD
from tests.sandbox.procs import is_alive
from tests.sandbox.state import load

pytestmark = pytest.mark.e2e

HELM_TIMEOUT_S = 120


def short(digest: str) -> str:
    """What helm-controller appends to the chart version: the first 12 hex digits of the digest."""
    return digest.removeprefix("sha256:")[:12]


def helm_release(sandbox: SandboxClient, deployment: HelmDeployment) -> dict[str, Any]:
    return sandbox.get_json("helmrelease", deployment.name, deployment.namespace)


def wait_release(
    sandbox: SandboxClient, deployment: HelmDeployment, *, ready: str, attempted: str
) -> dict[str, Any]:
    return sandbox.wait_helm_release(deployment, attempted=attempted, ready=ready, timeout=HELM_TIMEOUT_S)


def wait_ready_reason(sandbox: SandboxClient, deployment: HelmDeployment, reason: str) -> dict[str, Any]:
    """The HelmRelease once its Ready condition has `reason` (for failures before any attempt)."""

    def has_reason(obj: dict[str, Any]) -> bool:
        return (condition(obj, "Ready") or {}).get("reason") == reason

    return sandbox.wait_condition(
        "helmrelease", deployment.name, deployment.namespace, has_reason, timeout=HELM_TIMEOUT_S,
        what=f"Ready reason {reason}",
    )  # fmt: skip


def greeting(sandbox: SandboxClient, deployment: HelmDeployment) -> str | None:
    obj = sandbox.find_json("configmap", f"{deployment.name}-greeting", deployment.target_namespace)
    return None if obj is None else str(obj["data"]["greeting"])


def reconcile_source(sandbox: SandboxClient, deployment: HelmDeployment) -> str:
    done = sandbox.flux("reconcile", "source", "oci", deployment.name, "-n", deployment.namespace)
    return done.stderr


def test_chart_pushed_with_flux_push_artifact_is_installed(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path / "app", greeting="hello-1")
    pushed = sandbox.push_artifact(chart.parent, repository, docker_config=docker_config)
    deployment = sandbox.deploy_helm(namespace, "app", repository)

    release = wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(pushed.digest)}")

    status = release["status"]
    # With a tag that is not a version, helm-controller stores the whole source revision here.
    assert status["lastAttemptedRevisionDigest"] == f"latest@{pushed.digest}"
    assert status["lastAttemptedReleaseAction"] == "install"
    [installed] = status["history"]
    assert installed["chartName"] == "mychart"
    assert installed["chartVersion"] == f"0.1.0+{short(pushed.digest)}"
    assert installed["ociDigest"] == f"latest@{pushed.digest}"
    assert installed["status"] == "deployed"
    ready = condition(release, "Ready")
    assert ready is not None
    assert ready["reason"] == "InstallSucceeded"
    assert f"with chart mychart@0.1.0+{short(pushed.digest)}" in ready["message"]
    assert greeting(sandbox, deployment) == "hello-1"


def test_new_digest_with_the_same_chart_version_is_upgraded(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    first = sandbox.push_artifact(
        write_chart(tmp_path / "v1", greeting="hello-1").parent, repository, docker_config=docker_config
    )
    deployment = sandbox.deploy_helm(namespace, "app", repository)
    wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(first.digest)}")

    second = sandbox.push_artifact(
        write_chart(tmp_path / "v2", greeting="hello-2").parent, repository, docker_config=docker_config
    )
    assert second.digest in reconcile_source(sandbox, deployment)
    release = wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(second.digest)}")

    status = release["status"]
    assert status["lastAttemptedReleaseAction"] == "upgrade"
    assert [entry["chartVersion"] for entry in status["history"]] == [
        f"0.1.0+{short(second.digest)}",
        f"0.1.0+{short(first.digest)}",
    ]
    assert [entry["status"] for entry in status["history"]] == ["deployed", "superseded"]
    assert greeting(sandbox, deployment) == "hello-2"


def test_helm_oci_chart_is_installed_through_a_layer_selector(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path / "src", version="1.2.3", greeting="from-oras")
    pushed = sandbox.push_helm_chart(chart, repository, docker_config=docker_config, workdir=tmp_path / "oci")
    deployment = sandbox.deploy_helm(
        namespace, "app", repository, tag=pushed.tag, layer_selector=HELM_CHART_LAYER_SELECTOR
    )

    release = wait_release(sandbox, deployment, ready="True", attempted=f"1.2.3+{short(pushed.digest)}")

    # A tag that is the chart version: only the digest is stored, without the tag.
    assert release["status"]["lastAttemptedRevisionDigest"] == pushed.digest
    assert release["status"]["history"][0]["ociDigest"] == pushed.digest
    source = sandbox.get_json("ocirepository", deployment.name, namespace)
    assert source["status"]["artifact"]["revision"] == f"1.2.3@{pushed.digest}"
    assert greeting(sandbox, deployment) == "from-oras"


def test_helm_oci_chart_installs_without_a_layer_selector_too(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    # Without a selector source-controller extracts the first layer whatever its media type; the
    # packaged chart is a tar+gzip with the chart one level down, so it re-archives into a chart.
    chart = write_chart(tmp_path / "src", greeting="first-layer")
    pushed = sandbox.push_helm_chart(chart, repository, docker_config=docker_config, workdir=tmp_path / "oci")
    deployment = sandbox.deploy_helm(namespace, "app", repository, tag=pushed.tag)

    release = wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(pushed.digest)}")

    assert release["status"]["lastAttemptedRevisionDigest"] == pushed.digest
    assert greeting(sandbox, deployment) == "first-layer"


def test_chart_files_at_the_artifact_root_cannot_be_loaded(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path / "app")
    pushed = sandbox.push_artifact(chart.directory, repository, docker_config=docker_config)  # not .parent
    deployment = sandbox.deploy_helm(namespace, "app", repository)

    release = wait_ready_reason(sandbox, deployment, "ArtifactFailed")

    ready = condition(release, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    # Helm's archive loader drops the first path element of every entry: "Chart.yaml" becomes "".
    assert ready["message"] == (
        'Could not load chart: chart illegally contains content outside the base directory: "Chart.yaml"'
    )
    assert "lastAttemptedRevision" not in release["status"]  # the chart never loaded
    source = sandbox.get_json("ocirepository", deployment.name, namespace)
    assert source["status"]["artifact"]["revision"] == f"latest@{pushed.digest}"


def test_invalid_object_fails_the_install_with_the_api_server_message(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path / "app", templates={"cm.yaml": INVALID_CONFIGMAP_TEMPLATE})
    pushed = sandbox.push_artifact(chart.parent, repository, docker_config=docker_config)
    deployment = sandbox.deploy_helm(namespace, "app", repository)

    release = wait_release(sandbox, deployment, ready="False", attempted=f"0.1.0+{short(pushed.digest)}")

    ready = condition(release, "Ready")
    assert ready is not None
    assert ready["reason"] == "InstallFailed"
    assert "Not_A_Valid_Name" in ready["message"]
    assert release["status"]["history"][0]["status"] == "failed"
    assert release["status"]["installFailures"] >= 1


def test_semver_tag_must_equal_the_chart_version(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    # helm-controller reads a tag that parses as a version (here 12345678 = 12345678.0.0, as an
    # all-digit short commit SHA would) as the chart version and refuses any other.
    chart = write_chart(tmp_path / "app")
    sandbox.push_artifact(chart.parent, repository, docker_config=docker_config, tag="12345678")
    deployment = sandbox.deploy_helm(namespace, "app", repository, tag="12345678")

    release = wait_ready_reason(sandbox, deployment, "ChartMutateError")

    ready = condition(release, "Ready")
    assert ready is not None
    assert ready["message"] == "artifact revision 12345678 does not match chart version 0.1.0"


def test_without_digest_tracking_a_new_digest_of_the_same_version_is_not_released(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    first = sandbox.push_artifact(
        write_chart(tmp_path / "v1", greeting="hello-1").parent, repository, docker_config=docker_config
    )
    deployment = sandbox.deploy_helm(namespace, "app", repository, digest_tracking=False)
    release = wait_release(sandbox, deployment, ready="True", attempted="0.1.0")
    assert release["status"]["lastAttemptedRevisionDigest"] == f"latest@{first.digest}"
    assert release["status"]["history"][0]["chartVersion"] == "0.1.0"

    second = sandbox.push_artifact(
        write_chart(tmp_path / "v2", greeting="hello-2").parent, repository, docker_config=docker_config
    )
    reconcile_source(sandbox, deployment)

    def saw_second() -> dict[str, Any] | None:
        obj = helm_release(sandbox, deployment)
        return obj if obj["status"].get("lastAttemptedRevisionDigest") == f"latest@{second.digest}" else None

    release = sandbox.wait_for(saw_second, timeout=HELM_TIMEOUT_S, what="the second digest to be attempted")

    # The new digest is recorded as attempted, yet nothing was released: same version, same values.
    status = release["status"]
    assert status["lastAttemptedRevision"] == "0.1.0"
    assert [entry["ociDigest"] for entry in status["history"]] == [f"latest@{first.digest}"]
    assert greeting(sandbox, deployment) == "hello-1"
    state = load(sandbox.state_dir)  # the shard is recorded, so `down` stops it
    assert state is not None
    assert is_alive(state.process(HELM_SHARD))


def test_main_helm_controller_leaves_sharded_releases_alone(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    sandbox.push_artifact(write_chart(tmp_path / "app").parent, repository, docker_config=docker_config)
    deployment = sandbox.deploy_helm(namespace, "app", repository, digest_tracking=False)
    wait_release(sandbox, deployment, ready="True", attempted="0.1.0")

    main_log = Path(sandbox.state.process("helm-controller").log).read_text(encoding="utf-8")
    shard_log = Path(sandbox.state.process(HELM_SHARD).log).read_text(encoding="utf-8")
    # Namespace names are unique per test: only the shard ever logged about this one.
    assert namespace not in main_log
    assert f'"namespace": "{namespace}"' in shard_log


def test_restarted_helm_controller_releases_a_new_digest(
    sandbox: SandboxClient, namespace: str, repository: str, docker_config: Path, tmp_path: Path
) -> None:
    first = sandbox.push_artifact(
        write_chart(tmp_path / "v1", greeting="hello-1").parent, repository, docker_config=docker_config
    )
    deployment = sandbox.deploy_helm(namespace, "app", repository)
    wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(first.digest)}")
    old_pid = sandbox.state.process("helm-controller").pid

    sandbox.restart("helm-controller")

    assert sandbox.state.process("helm-controller").pid != old_pid
    second = sandbox.push_artifact(
        write_chart(tmp_path / "v2", greeting="hello-2").parent, repository, docker_config=docker_config
    )
    reconcile_source(sandbox, deployment)
    wait_release(sandbox, deployment, ready="True", attempted=f"0.1.0+{short(second.digest)}")
    assert greeting(sandbox, deployment) == "hello-2"
