"""Diagnostics of a failed deploy, from golden files of the real kustomize-controller's health-check
failure (a Deployment that never becomes ready) and the Events it and source-controller wrote."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flux_ci.commands import deploy
from flux_ci.context import Context
from flux_ci.errors import ConsumerFailedError
from flux_ci.kube import diagnostics, fluxobjects
from flux_ci.report.markdown import to_markdown
from flux_ci.report.models import Diagnostic, FailingObject, ObjectRef, Report
from flux_ci.report.render import to_json, to_table
from flux_ci.tools import kubectl
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.runner import CommandResult
from tests.fakecluster import PUSHED, FakeCluster, Obj, answer_deploy_tools, deploy_settings, kustomization_at
from tests.fakecluster import source_at as _source
from tests.fakes import FakeRunner, make_context
from tests.golden import obj, text

KS = obj("kubectl/events-health-check-failed-kustomization.json")
EVENTS = kubectl.parse_events(text("kubectl/events-health-check-failed.json"))
NS = KS["metadata"]["namespace"]
WEB = ObjectRef("Deployment", NS, "web")
APP = ObjectRef("Kustomization", NS, "app")
DIGEST = KS["status"]["lastAttemptedRevision"].split("@", 1)[1]
NO_STATUS = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS}}


def test_the_inventory_ids_are_read_with_their_api_group() -> None:
    assert diagnostics.inventory(KS) == [
        diagnostics.Entry("ConfigMap", NS, "greeting", ""),
        diagnostics.Entry("Deployment", NS, "web", "apps"),
    ]
    assert diagnostics.to_read(KS) == [diagnostics.Entry("Deployment", NS, "web", "apps")]
    assert kubectl.resource_name("Deployment", "apps") == "Deployment.apps"
    assert kubectl.resource_name("ConfigMap", "") == "ConfigMap"


def test_the_health_check_message_names_the_deployment_and_its_status() -> None:
    assert diagnostics.named(KS) == {WEB: "InProgress"}


def test_only_warning_events_of_the_object_count_newest_first_and_bounded() -> None:
    assert [e.split(":")[0] for e in diagnostics.warnings(EVENTS, APP)] == ["HealthCheckFailed"]
    assert diagnostics.warnings(EVENTS, WEB) == ()  # no controller-manager: nothing reports on it
    warning = next(
        e for e in EVENTS if e["type"] == "Warning" and e["involvedObject"]["kind"] == "Kustomization"
    )
    many = []
    for second in range(6):
        event = copy.deepcopy(warning)
        event["lastTimestamp"] = f"2026-01-01T00:00:0{second}Z"
        event["message"] = f"attempt {second} " + "x" * 500
        event["count"] = second + 1
        many.append(event)
    found = diagnostics.warnings(many, APP)
    assert len(found) == diagnostics.MAX_EVENTS
    assert found[0].startswith("HealthCheckFailed: attempt 5 ")
    assert found[0].endswith("(6 times)")
    assert len(found[0]) <= fluxobjects.MAX_MESSAGE + len("HealthCheckFailed: ") + len(" (6 times)")


def test_the_diagnostic_names_the_deployment_its_condition_the_retry_and_the_commands() -> None:
    diagnostic = diagnostics.diagnose(KS, DIGEST, events=EVENTS, objects={WEB: NO_STATUS}, kube_context="ci")
    assert diagnostic.consumer == APP
    assert diagnostic.message.startswith("health check failed after")
    assert [o.ref for o in diagnostic.objects] == [WEB]
    assert "health check: InProgress" in diagnostic.objects[0].status
    assert "no status: no controller has reported on it" in diagnostic.objects[0].status
    assert diagnostic.events[0].startswith("HealthCheckFailed: health check failed")
    assert diagnostic.retry == f"Flux keeps retrying {DIGEST} every {KS['spec']['retryInterval']}"
    assert diagnostic.commands == (
        f"flux events --for Kustomization/app -n {NS} --context=ci",
        f"flux get kustomizations app -n {NS} --context=ci",
    )
    without_context = diagnostics.diagnose(KS, DIGEST)
    assert without_context.commands[0] == f"flux events --for Kustomization/app -n {NS}"


def test_the_retry_falls_back_to_the_interval_and_conditions_are_summarised() -> None:
    ks = copy.deepcopy(KS)
    del ks["spec"]["retryInterval"]
    assert diagnostics.retry_text(ks, DIGEST).endswith(f"every {ks['spec']['interval']}")
    deployment = {
        "status": {
            "conditions": [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "m",
                },
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ]
        }
    }
    assert diagnostics.object_status("", deployment) == "Available=False MinimumReplicasUnavailable: m"


def test_inventory_objects_with_warnings_are_named_and_the_total_is_bounded() -> None:
    ks = copy.deepcopy(KS)
    ks["status"]["inventory"]["entries"] = [{"id": f"{NS}_cm{i}__ConfigMap", "v": "v1"} for i in range(15)]
    events = [
        {
            "type": "Warning",
            "reason": "Broken",
            "message": "m",
            "involvedObject": {"kind": "ConfigMap", "name": f"cm{i}", "namespace": NS},
        }
        for i in range(15)
    ]
    diagnostic = diagnostics.diagnose(ks, DIGEST, events=events)
    assert len(diagnostic.objects) == diagnostics.MAX_OBJECTS
    assert diagnostic.objects[0].ref == WEB  # named by the health check: first
    assert diagnostic.objects[1] == FailingObject(ObjectRef("ConfigMap", NS, "cm0"), "", ("Broken: m",))


def _context(runner: FakeRunner, seconds: float = 10) -> Context:
    return make_context(runner=runner, seconds=seconds)


def test_gather_reads_the_events_and_the_named_objects_within_its_budget() -> None:
    runner = FakeRunner()
    runner.answer(["kubectl", "get", "events"], stdout=text("kubectl/events-health-check-failed.json"))
    runner.answer(["kubectl", "get", "Deployment.apps", "web"], stdout=json.dumps(NO_STATUS))
    found = diagnostics.gather(_context(runner, seconds=0), [KS], DIGEST)  # the deadline has passed
    assert runner.commands() == [
        f"kubectl get events --namespace={NS} --output=json",
        f"kubectl get Deployment.apps web --namespace={NS} --output=json",
    ]
    assert [o.status for o in found[0].objects] == [
        "health check: InProgress; no status: no controller has reported on it"
    ]
    assert found[0].events[0].startswith("HealthCheckFailed")


def test_gather_with_no_budget_left_reads_nothing_but_still_diagnoses() -> None:
    runner = FakeRunner()
    found = diagnostics.gather(_context(runner), [KS], DIGEST, budget_s=0)
    assert runner.commands() == []
    assert [o.ref for o in found[0].objects] == [WEB]
    assert found[0].events == ()


def test_a_failed_read_is_left_out() -> None:
    runner = FakeRunner()
    runner.answer(["kubectl", "get", "events"], stderr="Error from server (Forbidden): events\n", exit_code=1)
    runner.answer(["kubectl", "get", "Deployment.apps"], stdout="not json")
    found = diagnostics.gather(_context(runner), [KS], DIGEST)
    assert found[0].objects[0].status == "health check: InProgress"
    assert found[0].events == ()


# --- the renderers -------------------------------------------------------------------------------


def _report() -> Report:
    report = Report("deploy", exit_code=7)
    report.diagnostics = [
        diagnostics.diagnose(KS, DIGEST, events=EVENTS, objects={WEB: NO_STATUS}, kube_context="ci")
    ]
    return report


def test_json_has_the_diagnostics() -> None:
    data = json.loads(to_json(_report()))
    [diagnostic] = data["diagnostics"]
    assert (diagnostic["kind"], diagnostic["name"]) == ("Kustomization", "app")
    assert diagnostic["objects"][0]["kind"] == "Deployment"
    assert diagnostic["objects"][0]["name"] == "web"
    assert "InProgress" in diagnostic["objects"][0]["status"]
    assert diagnostic["retry"].startswith("Flux keeps retrying sha256:")
    assert diagnostic["commands"][0] == f"flux events --for Kustomization/app -n {NS} --context=ci"
    assert json.loads(to_json(Report("deploy")))["diagnostics"] == []


def test_the_table_lists_the_failing_objects_within_the_width() -> None:
    table = to_table(_report())
    assert "diagnostics:" in table
    assert f"  Deployment/{NS}/web: health check: InProgress" in table
    assert f"  run: flux get kustomizations app -n {NS} --context=ci" in table
    assert "  next: Flux keeps retrying sha256:" in table
    assert max(len(line) for line in table.splitlines()) <= 120


def test_markdown_escapes_and_lists_the_commands_in_a_code_block() -> None:
    report = _report()
    evil = Diagnostic(APP, "<b>|x|</b>", "Flux keeps retrying d every 1m", ("flux get kustomizations app",))
    report.diagnostics.append(evil)
    text = to_markdown(report)
    assert f"| `Deployment/{NS}/web` | health check: InProgress;" in text
    assert f"```text\nflux events --for Kustomization/app -n {NS} --context=ci\n" in text
    assert "<b>" not in text
    assert "&lt;b&gt;\\|x\\|&lt;/b&gt;" in text


# --- the flow: one catch site --------------------------------------------------------------------


class _EventsCluster(FakeCluster):
    """FakeCluster that also answers the diagnostics' reads (events, the Deployment)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult:
        run = (
            functools.partial(FakeRunner.run, self)
            if list(argv[:3]) in (["kubectl", "get", "events"], ["kubectl", "get", "Deployment.apps"])
            else super().run
        )
        return run(argv, timeout=timeout, stdin=stdin, env=env, mutating=mutating, trace_output=trace_output)


def _health_check_failed(digest: str) -> Obj:
    """The golden Kustomization, in the fake cluster's namespace, failing its health check on `digest`."""
    ks = kustomization_at(digest)
    status: dict[str, Any] = copy.deepcopy(KS["status"])
    ks["status"]["conditions"] = [
        {**c, "observedGeneration": ks["metadata"]["generation"]} for c in status["conditions"]
    ]
    ks["status"]["lastAttemptedRevision"] = f"latest@{digest}"
    ks["status"]["inventory"] = status["inventory"]
    ks["spec"]["retryInterval"] = "1m"
    return ks


def test_a_consumer_failing_its_health_check_is_diagnosed_and_the_error_kept(tmp_path: Path) -> None:
    ns = kustomization_at()["metadata"]["namespace"]
    failed = json.loads(json.dumps(_health_check_failed(PUSHED)).replace(NS, ns).replace(DIGEST, PUSHED))
    cluster = _EventsCluster([_source(), kustomization_at()])
    answer_deploy_tools(cluster)
    events = text("kubectl/events-health-check-failed.json").replace(NS, ns)
    cluster.answer(["kubectl", "get", "events"], stdout=events)
    cluster.answer(["kubectl", "get", "Deployment.apps"], stdout=json.dumps(NO_STATUS).replace(NS, ns))

    def controllers(fake: FakeCluster, requested: Obj, token: str) -> None:
        # Fake controllers following kubectl/events-health-check-failed-kustomization.json: only the
        # final states (this test is about the diagnostics read after the failure, not the stages).
        fetched = copy.deepcopy(requested)
        fetched["status"]["lastHandledReconcileAt"] = token
        fetched["status"]["artifact"]["revision"] = f"latest@{PUSHED}"
        fake.put(fetched)
        fake.put(failed)

    cluster.on_annotate = controllers
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    report = Report("deploy")
    ctx = make_context(deploy_settings(manifests), cluster, seconds=10)
    with pytest.raises(ConsumerFailedError, match="health check failed"):
        deploy.run_deploy(ctx, report)
    [diagnostic] = report.diagnostics
    assert diagnostic.consumer == ObjectRef("Kustomization", ns, "app")
    assert [o.ref for o in diagnostic.objects] == [ObjectRef("Deployment", ns, "web")]
    assert diagnostic.retry == f"Flux keeps retrying {PUSHED} every 1m"
    assert f"kubectl get events --namespace={ns} --output=json" in cluster.commands()
