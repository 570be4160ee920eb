"""GitLab's and GitHub's variables as defaults, and the traceability annotations: what a push records
about who pushed, and that nothing secret gets there."""

from __future__ import annotations

import json

import pytest

from flux_ci.config.ci import (
    ANNOTATION_PREFIX,
    ci_defaults,
    provenance,
    public_url,
    trace_annotations,
)
from flux_ci.config.settings import Settings
from flux_ci.errors import ConfigError
from flux_ci.report.models import Provenance
from tests.golden import text

GITLAB = {
    "CI_PIPELINE_URL": "https://gitlab.example.com/group/app/-/pipelines/4711",
    "CI_JOB_URL": "https://gitlab.example.com/group/app/-/jobs/9001",
    "GITLAB_USER_LOGIN": "alice",
    "CI_JOB_STARTED_AT": "2026-01-02T10:00:00Z",
}


def test_gitlab_names_the_pipeline_the_job_and_the_user() -> None:
    defaults = ci_defaults(GITLAB)
    assert defaults["pipeline_url"] == GITLAB["CI_PIPELINE_URL"]
    assert defaults["job_url"] == GITLAB["CI_JOB_URL"]
    assert defaults["pipeline_user"] == "alice"
    assert "job_started_at" not in defaults  # read as it is (CI_JOB_STARTED_AT), a time, by Settings


def test_github_names_the_run_and_the_actor_but_no_job() -> None:
    env = {"GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "123", "GITHUB_ACTOR": "octocat"}
    defaults = ci_defaults({**env, "GITHUB_SERVER_URL": "https://github.example"})
    assert defaults["pipeline_url"] == "https://github.example/acme/app/actions/runs/123"
    assert defaults["pipeline_user"] == "octocat"
    assert "job_url" not in defaults
    assert "job_started_at" not in defaults


def test_a_ci_url_carrying_credentials_loses_them() -> None:
    defaults = ci_defaults({"CI_JOB_URL": "https://gitlab-ci-token:t0k3n@gitlab.example.com/g/a/-/jobs/1"})
    assert defaults["job_url"] == "https://gitlab.example.com/g/a/-/jobs/1"


def test_annotations_under_one_prefix_with_values_fit_to_publish() -> None:
    annotations = trace_annotations(
        pipeline_url="https://u:p@ci.example/p/1?private_token=secret#frag",
        job_url="https://ci.example/jobs/a=b",
        user=" alice ",
        started_at=None,
    )
    assert annotations == {
        "io.flux-ci.pipeline.url": "https://ci.example/p/1",
        "io.flux-ci.job.url": "https://ci.example/jobs/a%3Db",  # flux refuses a second `=`
        "io.flux-ci.pipeline.user": "alice",
    }
    assert all(key.startswith(ANNOTATION_PREFIX) for key in annotations)
    assert trace_annotations(pipeline_url=None, job_url="", user="", started_at="") == {}


def test_public_url_keeps_scheme_host_and_path_only() -> None:
    assert public_url("https://x:y@h.example:8443/a/b?q=1#f") == "https://h.example:8443/a/b"
    assert public_url("  ") == ""


def test_provenance_reads_the_annotations_of_a_real_manifest() -> None:
    annotations = json.loads(text("oras/manifest-fetch.json"))["annotations"]
    assert provenance(annotations) == Provenance(
        pipeline_url="https://gitlab.example/group/app/-/pipelines/102",
        job_url="https://gitlab.example/group/app/-/jobs/202",
        user="alice",
        pushed_at="2026-01-02T10:00:00Z",
        source="https://git.example/app",
        revision="main@sha1:2222222222222222222222222222222222222222",
    )


def test_a_reproducible_creation_time_says_nothing_of_the_push() -> None:
    assert provenance({"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}).pushed_at == ""
    created = "2026-03-04T05:06:07Z"
    assert provenance({"org.opencontainers.image.created": created}).pushed_at == created
    assert not provenance({"org.opencontainers.image.source": "https://git.example/app"})


def test_an_explicit_url_with_credentials_is_refused_and_never_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUX_CI_PIPELINE_URL", "https://bob:hunter22@ci.example/p/1")
    with pytest.raises(ConfigError) as raised:
        Settings.load()
    assert "FLUX_CI_PIPELINE_URL: contains credentials" in raised.value.message
    assert "hunter22" not in raised.value.message


@pytest.mark.parametrize("value", ["0", "101", "ten"])
def test_history_is_a_count_within_bounds(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FLUX_CI_HISTORY", value)
    with pytest.raises(ConfigError, match="FLUX_CI_HISTORY"):
        Settings.load()
