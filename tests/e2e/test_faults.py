"""Registry faults, injected for real between flux-ci, source-controller and the sandbox registry:

    flux-ci, source-controller ──▶ Toxiproxy (TCP: latency, reset, black hole)
                               ──▶ FaultInjector (HTTP: 503, 429 + Retry-After, 403) ──▶ docker-registry

(tests/sandbox/faults.py). The project's OCIRepository reads the repository through the same chain as
flux-ci pushes to it (FLUX_CI_REPOSITORY is the source's spec.url), so source-controller's fetch
meets the faults too. Contract rule 8: transient faults are retried (flux-ci) or waited out
(source-controller's fetch, exit 4 retryable at the deadline); refusals are permanent (exit 6).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flux_ci.registry.retry import BACKOFF_S
from tests.e2e.project import Project, Running
from tests.sandbox import SandboxClient
from tests.sandbox.faults import FaultInjector, Rule, Toxiproxy

pytestmark = pytest.mark.e2e

SLACK_S = 15  # a slow CI machine: bounds say "at the deadline" or "at once", not to the millisecond


@dataclass
class Faulty:
    """A project whose registry traffic, flux-ci's and source-controller's, goes through the faults."""

    project: Project
    injector: FaultInjector
    toxiproxy: Toxiproxy

    @property
    def url(self) -> str:
        return f"oci://{self.toxiproxy.listen}/{self.project.repository}"

    def env(self, **extra: str) -> dict[str, str]:
        return self.project.env(FLUX_CI_REPOSITORY=self.url, **extra)


@pytest.fixture
def faulty(sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path) -> Iterator[Faulty]:
    injector = FaultInjector(sandbox.registry)
    toxiproxy = Toxiproxy(injector.address, tmp_path / "toxiproxy.log")
    try:
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        project = Project(sandbox, namespace, repository, manifests)
        project.write("hello")
        faulty = Faulty(project, injector, toxiproxy)
        sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
        # The source reads through the faults: its URL and its pull secret name the injector.
        sandbox.apply(json.dumps(_pull_secret(sandbox, namespace, toxiproxy.listen)))
        project.patch("ocirepositories.source.toolkit.fluxcd.io", "app",
                      {"spec": {"url": faulty.url, "secretRef": {"name": "via-faults"}}})  # fmt: skip
        yield faulty
    finally:
        injector.stop()
        toxiproxy.stop()


def _pull_secret(sandbox: SandboxClient, namespace: str, address: str) -> dict[str, object]:
    user, password = sandbox.registry_user, sandbox.registry_password
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = json.dumps({"auths": {address: {"username": user, "password": password, "auth": auth}}})
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "via-faults", "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }  # fmt: skip


# --- flux-ci's own registry calls -----------------------------------------------------------------


def test_a_deploy_through_the_faults_with_none_injected_succeeds(faulty: Faulty) -> None:
    run = faulty.project.flux_ci("deploy", env=faulty.env())
    assert run.exit_code == 0, run.stderr
    assert run.json()["sources"][0]["revision"].endswith(run.json()["artifact"]["digest"])
    agents = {hit.agent.split("/")[0] for hit in faulty.injector.hits}
    assert len(agents) >= 2, agents  # flux-ci's tools and source-controller both came through


@pytest.mark.parametrize(
    ("status", "headers"), [(503, {}), (429, {"Retry-After": "1"})], ids=["503", "429-retry-after"]
)
def test_an_overloaded_registry_is_retried_into_success(
    faulty: Faulty, status: int, headers: dict[str, str]
) -> None:
    # Every request refused until flux-ci itself retries (the tools' own few retries run out first).
    faulty.injector.script(Rule(status, headers=headers))
    running = faulty.project.start("-v", "deploy", env=faulty.env(FLUX_CI_TIMEOUT="120s"))
    try:
        line = running.wait_for_line("retry in", timeout=90)
    finally:
        faulty.injector.clear()
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    assert str(status) in line  # the registry's own answer, in flux-ci's retry line
    assert faulty.injector.answered(status)


def test_connections_reset_are_retried_until_they_stop(faulty: Faulty) -> None:
    faulty.toxiproxy.add("reset", "reset_peer", timeout=0)
    running = faulty.project.start("-v", "deploy", env=faulty.env(FLUX_CI_TIMEOUT="120s"))
    try:
        line = running.wait_for_line("retry in", timeout=60)
    finally:
        faulty.toxiproxy.remove("reset")
    run = running.finish()
    assert run.exit_code == 0, run.stderr
    assert "connection reset" in line


def test_a_slow_registry_is_only_slow(faulty: Faulty) -> None:
    with faulty.toxiproxy.toxic("slow", "latency", latency=400):
        run = faulty.project.flux_ci("deploy", env=faulty.env(FLUX_CI_TIMEOUT="120s"))
    assert run.exit_code == 0, run.stderr
    push = next(step for step in run.json()["steps"] if step["name"] == "push")
    assert push["duration_s"] >= 0.8  # at least two answers, each 400 ms late: the latency was there


def test_a_black_hole_is_exit_4_retryable_at_the_deadline(faulty: Faulty) -> None:
    # Connections open, nothing ever comes back: only the deadline ends it.
    with faulty.toxiproxy.toxic("black-hole", "timeout", timeout=0):
        run = faulty.project.flux_ci("deploy", env=faulty.env(FLUX_CI_TIMEOUT="20s"), timeout=120)
    assert run.exit_code == 4, run.stderr
    assert run.json()["error"]["retryable"] is True
    # It kept trying until the deadline, or until less time was left than its next pause: a pause
    # that would outlast the deadline is not taken (on a loaded machine it ended at 19.0 s of 20).
    assert 20 - max(BACKOFF_S) <= run.seconds < 20 + SLACK_S
    assert faulty.project.absent("c1")


# --- source-controller's fetch --------------------------------------------------------------------


def _fetch_meets(faulty: Faulty, rule: Rule, timeout: str) -> Running:
    """A deploy whose push goes through cleanly, then source-controller's fetch meets `rule`."""
    sandbox = faulty.project.sandbox
    with sandbox.paused("source-controller"):
        running = faulty.project.start("-v", "deploy", env=faulty.env(FLUX_CI_TIMEOUT=timeout))
        running.wait_for_line(f"reconcile requested: OCIRepository app in {faulty.project.namespace}")
        faulty.injector.script(rule)  # from now on only source-controller asks the registry
    return running


def test_a_fetch_answered_503_is_waited_out_and_succeeds_when_the_fault_clears(faulty: Faulty) -> None:
    running = _fetch_meets(faulty, Rule(503), timeout="150s")
    line = running.wait_for_line("scripted 503", timeout=90)  # the fetch error, named as it waits
    assert running.process.poll() is None, "".join(running.seen)  # not exit 6 at once
    faulty.injector.clear()
    run = running.finish(timeout=240)
    assert run.exit_code == 0, run.stderr
    assert f"OCIRepository/{faulty.project.namespace}/app" in line
    assert faulty.injector.answered(503)


def test_a_fetch_answered_503_to_the_deadline_is_exit_4_retryable(faulty: Faulty) -> None:
    running = _fetch_meets(faulty, Rule(503), timeout="40s")
    run = running.finish(timeout=120)
    assert run.exit_code == 4, run.stderr
    error = run.json()["error"]
    assert error["retryable"] is True
    assert "source-controller could not fetch the artifact" in error["message"]
    assert "scripted 503" in error["message"]


def test_a_fetch_refused_403_is_exit_6_at_once(faulty: Faulty) -> None:
    running = _fetch_meets(faulty, Rule(403), timeout="120s")
    run = running.finish(timeout=120)
    assert run.exit_code == 6, run.stderr
    assert "scripted 403" in run.json()["error"]["message"]
    assert run.seconds < 60  # at once, not at the deadline
