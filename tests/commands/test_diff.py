"""`flux-ci diff`: the parser on real `flux diff kustomization` output, the flow, and the renderings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flux_ci.commands import diff
from flux_ci.config import plan
from flux_ci.config.settings import Settings
from flux_ci.errors import ClusterError, ConfigError, ExitCode
from flux_ci.report.dotenv import to_dotenv
from flux_ci.report.markdown import to_markdown
from flux_ci.report.models import Change, ChangeKind, ObjectRef, Report
from flux_ci.report.render import to_json, to_table
from flux_ci.tools import flux
from tests import golden
from tests.fakecluster import KUSTOMIZATION, SOURCE, FakeCluster, answer_deploy_tools, deploy_settings
from tests.fakes import make_context

KS = ObjectRef("Kustomization", "golden-diff", "app")


def test_no_change_is_no_object() -> None:
    assert flux.parse_diff(golden.text("flux/diff-no-change.stdout")) == []


def test_drifted_created_and_deleted_objects_in_flux_order() -> None:
    found = flux.parse_diff(golden.text("flux/diff-changed.stdout"))
    assert [(f.object, f.change) for f in found] == [
        ("ConfigMap/golden-diff/greeting", "drifted"),
        ("ConfigMap/golden-diff/added", "created"),
        ("ConfigMap/golden-diff/doomed", "deleted"),
    ]
    assert found[0].diff == "data.greeting\n± value change\n- hello\n+ bonjour"
    assert found[1].diff == found[2].diff == ""


def test_colours_and_skipped_objects_are_left_out() -> None:
    text = "\x1b[32m► ConfigMap/n/a created\x1b[0m\n► ConfigMap/n/b skipped\n"
    assert flux.parse_diff(text) == [flux.ObjectDiff("ConfigMap/n/a", "created")]


def test_a_long_diff_is_cut() -> None:
    body = "\n".join(f"+ line {i}" for i in range(2000))
    (found,) = flux.parse_diff(f"► ConfigMap/n/a drifted\n{body}\n")
    assert len(found.diff) < flux.DIFF_LIMIT + 100
    assert found.diff.endswith("more characters cut)")


def test_failures_are_classified() -> None:
    missing = flux.diff_failure("missing", golden.text("flux/diff-missing-kustomization.stderr"))
    assert isinstance(missing, ConfigError)
    assert "not found" in missing.message
    unreachable = flux.diff_failure("app", golden.text("flux/diff-unreachable.stderr"))
    assert isinstance(unreachable, ClusterError)
    assert unreachable.exit_code == ExitCode.CLUSTER
    assert unreachable.retryable


def test_argv_names_the_kustomization_path_and_context() -> None:
    argv = flux.diff_argv("app", namespace="ns", path=Path("m"), context="ctx", timeout_s=30.5)
    assert argv == [
        "flux", "diff", "kustomization", "app", "--namespace=ns", "--path=m",
        "--progress-bar=false", "--timeout=30s", "--context=ctx",
    ]  # fmt: skip


def _run(manifests: Path, exit_code: int, stdout: str = "", stderr: str = "") -> tuple[Report, FakeCluster]:
    cluster = FakeCluster((SOURCE, KUSTOMIZATION))
    answer_deploy_tools(cluster)
    cluster.answer(["flux", "diff"], stdout=stdout, stderr=stderr, exit_code=exit_code)
    settings = deploy_settings(manifests)
    report = Report("diff")
    ctx = make_context(settings, cluster)
    diff.run_diff(ctx, report)
    return report, cluster


def test_flow_diffs_each_kustomization_and_changes_nothing(manifests: Path) -> None:
    # flux's own exit 1 and warning on stderr when it found changes: an answer, not a failure.
    stdout, stderr = golden.text("flux/diff-changed.stdout"), golden.text("flux/diff-changed.stderr")
    report, cluster = _run(manifests, 1, stdout, stderr)
    assert report.error is None
    assert report.changed is True
    assert [str(c.change) for c in report.changes] == ["drifted", "created", "deleted"]
    assert {c.kustomization for c in report.changes} == {ObjectRef("Kustomization", "golden", "app")}
    diffs = [c for c in cluster.commands() if c.startswith("flux diff")]
    assert diffs == [
        f"flux diff kustomization app --namespace=golden --path={manifests} --progress-bar=false "
        + diffs[0].split(" ")[-1]
    ]
    assert cluster.mutations() == []
    assert not any(c.startswith(("flux push", "oras")) for c in cluster.commands())


def test_flow_no_change(manifests: Path) -> None:
    report, _ = _run(manifests, 0)
    assert report.changed is False
    assert report.changes == []


def test_flow_error_exit_is_raised(manifests: Path) -> None:
    with pytest.raises(ClusterError):
        _run(manifests, 2, stderr=golden.text("flux/diff-unreachable.stderr"))


def _report() -> Report:
    report = Report("diff", changed=True)
    report.changes = [
        Change(KS, "ConfigMap/golden-diff/greeting", ChangeKind.DRIFTED, "- hello\n+ bonjour"),
        Change(KS, "ConfigMap/golden-diff/added", ChangeKind.CREATED),
    ]
    return report


def test_json_has_changed_and_each_change() -> None:
    data = json.loads(to_json(_report()))
    assert data["changed"] is True
    assert data["changes"][0] == {
        "kustomization": "Kustomization/golden-diff/app",
        "object": "ConfigMap/golden-diff/greeting",
        "change": "drifted",
        "diff": "- hello\n+ bonjour",
    }
    assert "changed" not in json.loads(to_json(Report("status")))  # only diff reports it


def test_table_markdown_and_dotenv() -> None:
    table = to_table(_report())
    assert "ConfigMap/golden-diff/added" in table
    assert "created" in table
    assert "changed: yes" in table
    markdown = to_markdown(_report())
    assert "- `ConfigMap/golden-diff/greeting` drifted" in markdown
    assert "<details><summary>diff</summary>" in markdown
    assert "+ bonjour" in markdown
    assert "FLUX_CI_CHANGED=true" in to_dotenv(_report()).splitlines()
    unchanged = Report("diff", changed=False)
    assert "FLUX_CI_CHANGED=false" in to_dotenv(unchanged).splitlines()
    assert "No change" in to_markdown(unchanged)
    assert "FLUX_CI_CHANGED" not in to_dotenv(Report("deploy"))


def test_plan_needs_the_repository_and_the_manifests(tmp_path: Path) -> None:
    settings = Settings(path=tmp_path / "absent")
    with pytest.raises(ConfigError) as caught:
        plan.check(settings, "diff")
    assert "FLUX_CI_REPOSITORY" in caught.value.message
    assert "FLUX_CI_PATH" in caught.value.message


def test_the_dotenv_key_is_not_an_unknown_variable(monkeypatch: pytest.MonkeyPatch, manifests: Path) -> None:
    monkeypatch.setenv("FLUX_CI_CHANGED", "true")
    monkeypatch.setenv("FLUX_CI_REPOSITORY", "oci://registry.example/app")
    monkeypatch.setenv("FLUX_CI_PATH", str(manifests))
    assert plan.load("diff", {}).settings.path == manifests
