"""Every bad input is refused up front: exit 2, a message naming what to fix, no traceback, one JSON
document in JSON mode, no secret repeated, and no tool run but the version checks (so nothing pushed,
nothing asked of a cluster).

Each row runs `flux_ci.cli.app.main` in-process, with PATH holding only stand-ins for flux, oras and
kubectl that log their argv and fail: configuration is checked before any tool runs except the
read-only `<tool> version` checks, which start first (they run while the settings are read), so the
log may hold those and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flux_ci.cli.app import main

VALID = {
    "FLUX_CI_REPOSITORY": "oci://registry.example.com/group/app",
    "FLUX_CI_TAG": "c1",
    "FLUX_CI_SOURCE": "https://git.example/group/app",
    "FLUX_CI_REVISION": "main@sha1:0123abcd",
}
DIGEST = "sha256:" + "0" * 64
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n"


@dataclass(frozen=True)
class Bad:
    """One bad input: the variables that make it, what must be said, what must never be."""

    name: str
    env: dict[str, str]
    message: str
    args: tuple[str, ...] = ("push",)
    unset: tuple[str, ...] = ()
    secret: str | None = None  # must appear in no output
    layout: Callable[[Path], None] | None = None  # shapes the manifests dir (tmp/manifests)
    as_root_skip: str | None = None  # why this row cannot work as root, if it cannot
    code: int = 2


def _only(name: str, text: str) -> Callable[[Path], None]:
    def layout(manifests: Path) -> None:
        (manifests / "cm.yaml").unlink()
        (manifests / name).parent.mkdir(parents=True, exist_ok=True)
        (manifests / name).write_text(text)

    return layout


def _non_kubernetes(manifests: Path) -> None:
    (manifests / "cm.yaml").unlink()
    (manifests / "README.md").write_text("kind: ConfigMap\n")
    (manifests / "values.txt").write_text("replicas: 2\n")


def _unreadable(manifests: Path) -> None:
    manifests.chmod(0)


def _read_only_parent(manifests: Path) -> None:
    (manifests.parent / "reports").mkdir()
    (manifests.parent / "reports").chmod(stat.S_IRUSR | stat.S_IXUSR)


ROOT_READS_ALL = "root bypasses file permissions; tests/test_plan.py covers this through os.access"

ROWS = [
    # durations
    Bad("timeout inf", {"FLUX_CI_TIMEOUT": "inf"}, "FLUX_CI_TIMEOUT: 'inf' must be a duration from 1s"),
    Bad("timeout nan", {"FLUX_CI_TIMEOUT": "nan"}, "FLUX_CI_TIMEOUT: 'nan'"),
    Bad("timeout zero", {"FLUX_CI_TIMEOUT": "0"}, "FLUX_CI_TIMEOUT: '0'"),
    Bad("timeout negative", {"FLUX_CI_TIMEOUT": "-5s"}, "FLUX_CI_TIMEOUT: '-5s' is not a duration"),
    Bad("timeout overflow", {"FLUX_CI_TIMEOUT": "1e400"}, "FLUX_CI_TIMEOUT: '1e400'"),
    Bad("timeout half second", {"FLUX_CI_TIMEOUT": "0.5s"}, "FLUX_CI_TIMEOUT: '0.5s'"),
    Bad("timeout too long", {"FLUX_CI_TIMEOUT": "1000h"}, "FLUX_CI_TIMEOUT: '1000h'"),
    Bad("timeout words", {"FLUX_CI_TIMEOUT": "soon"}, "FLUX_CI_TIMEOUT: 'soon' is not a duration"),
    Bad("timeout flag", {}, "FLUX_CI_TIMEOUT: 'inf'", args=("--timeout", "inf", "push")),
    # tags
    Bad("tag with space", {"FLUX_CI_TAG": "not a tag"}, "FLUX_CI_TAG: 'not a tag': not a valid OCI tag"),
    Bad("tag leading dot", {"FLUX_CI_TAG": ".hidden"}, "FLUX_CI_TAG: '.hidden'"),
    Bad("tag too long", {"FLUX_CI_TAG": "x" * 129}, "not a valid OCI tag"),
    Bad(
        "none with tags",
        {"FLUX_CI_EXTRA_TAGS": "none,latest"},
        "none means no extra tags and must stand alone",
    ),
    Bad(
        "extra tag slash",
        {"FLUX_CI_EXTRA_TAGS": "latest,feat/x"},
        "FLUX_CI_EXTRA_TAGS: 'feat/x': not a valid",
    ),
    Bad("extra tags empty", {"FLUX_CI_EXTRA_TAGS": " , "}, "FLUX_CI_EXTRA_TAGS: is empty"),
    # repositories
    Bad(
        "repository uppercase",
        {"FLUX_CI_REPOSITORY": "oci://registry.example.com/Group/App"},
        "path component 'Group' must be lowercase",
    ),
    Bad(
        "repository with tag",
        {"FLUX_CI_REPOSITORY": "oci://registry.example.com/app:v1"},
        "must not include a tag or digest",
    ),
    Bad(
        "repository with digest",
        {"FLUX_CI_REPOSITORY": f"oci://registry.example.com/app@{DIGEST}"},
        "must not include a tag or digest",
    ),
    Bad(
        "repository without path",
        {"FLUX_CI_REPOSITORY": "oci://registry.example.com"},
        "oci://<registry>/<path>",
    ),
    Bad(
        "repository https",
        {"FLUX_CI_REPOSITORY": "https://registry.example.com/app"},
        "oci://<registry>/<path>",
    ),
    Bad("repository bad host", {"FLUX_CI_REPOSITORY": "oci://reg_istry/app"}, "is not a registry host"),
    Bad(
        "repository with password",
        {"FLUX_CI_REPOSITORY": "oci://robot:Rep0-Secret@registry.example.com/app"},
        "FLUX_CI_REPOSITORY: contains credentials (user:password@)",
        secret="Rep0-Secret",
    ),
    Bad(
        "repository with password, no scheme",
        {"FLUX_CI_REPOSITORY": "robot:Rep0-Secret@registry.example.com/app"},
        "FLUX_CI_REPOSITORY: contains credentials (user:password@)",
        secret="Rep0-Secret",
    ),
    Bad(
        "token in source",
        {"FLUX_CI_SOURCE": "https://oauth2:glpat-Secret123@gitlab.example.com/group/app"},
        "FLUX_CI_SOURCE: contains credentials (user:password@)",
        secret="glpat-Secret123",
    ),
    # credentials
    Bad(
        "user without password",
        {"FLUX_CI_REGISTRY_USER": "alice"},
        "but FLUX_CI_REGISTRY_USER is: set both, or neither",
    ),
    Bad(
        "password without user",
        {"FLUX_CI_REGISTRY_PASSWORD": "Lonely-Passw0rd"},
        "FLUX_CI_REGISTRY_USER is not set",
        secret="Lonely-Passw0rd",
    ),
    Bad(
        "gitlab password without user",
        {"CI_REGISTRY_PASSWORD": "Job-T0ken-Value"},
        "FLUX_CI_REGISTRY_USER is not set (in GitLab CI it defaults from CI_REGISTRY_USER)",
        secret="Job-T0ken-Value",
    ),
    # variable names
    Bad("typo extra tag", {"FLUX_CI_EXTRA_TAG": "main"}, "did you mean FLUX_CI_EXTRA_TAGS?"),
    Bad("typo timeout", {"FLUX_CI_TIMOUT": "5m"}, "FLUX_CI_TIMOUT is not a flux-ci variable; did you mean"),
    Bad("unknown name", {"FLUX_CI_COLOUR": "blue"}, "FLUX_CI_COLOUR is not a flux-ci variable"),
    # booleans
    Bad(
        "bool maybe",
        {"FLUX_CI_INSECURE_REGISTRY": "maybe"},
        "FLUX_CI_INSECURE_REGISTRY: 'maybe' is not a boolean",
    ),
    Bad("bool typo", {"FLUX_CI_DRY_RUN": "ture"}, "FLUX_CI_DRY_RUN: 'ture' is not a boolean"),
    Bad("bool number", {"FLUX_CI_REPRODUCIBLE": "2"}, "FLUX_CI_REPRODUCIBLE: '2' is not a boolean"),
    Bad("bool allow empty", {"FLUX_CI_ALLOW_EMPTY": "sure"}, "FLUX_CI_ALLOW_EMPTY: 'sure' is not a boolean"),
    Bad("bool trace", {"FLUX_CI_TRACE": "verbose"}, "FLUX_CI_TRACE: 'verbose' is not a boolean"),
    # consumers, sources, namespaces
    Bad(
        "wait for deployment",
        {"FLUX_CI_WAIT_FOR": "Deployment/apps/web"},
        "kind must be Kustomization or HelmRelease",
    ),
    Bad(
        "wait for kind only",
        {"FLUX_CI_WAIT_FOR": "Kustomization"},
        "must be Kind/namespace/name or Kind/name",
    ),
    Bad("wait for four parts", {"FLUX_CI_WAIT_FOR": "Kustomization/a/b/c"}, "must be Kind/namespace/name"),
    Bad("wait for none mixed", {"FLUX_CI_WAIT_FOR": "none,Kustomization/apps/web"}, "must stand alone"),
    Bad(
        "wait for bad namespace",
        {"FLUX_CI_WAIT_FOR": "Kustomization/Apps/web"},
        "'Apps' is not a valid namespace",
    ),
    Bad(
        "wait for bad name",
        {"FLUX_CI_WAIT_FOR": "HelmRelease/apps/db_1"},
        "'db_1' is not a valid Kubernetes name",
    ),
    Bad("namespace uppercase", {"FLUX_CI_NAMESPACE": "Flux-System"}, "FLUX_CI_NAMESPACE: 'Flux-System'"),
    Bad("namespace too long", {"FLUX_CI_NAMESPACE": "a" * 64}, "is not a valid namespace"),
    Bad("ocirepository shape", {"FLUX_CI_OCIREPOSITORY": "a/b/c"}, "FLUX_CI_OCIREPOSITORY: 'a/b/c' must be"),
    Bad("ocirepository name", {"FLUX_CI_OCIREPOSITORY": "apps/App"}, "'App' is not a valid Kubernetes name"),
    # digests and what reconcile/wait/status need
    Bad(
        "digest not hex",
        {"FLUX_CI_DIGEST": "sha256:nothex"},
        "FLUX_CI_DIGEST: 'sha256:nothex'",
        args=("reconcile",),
    ),
    Bad(
        "digest md5", {"FLUX_CI_DIGEST": "md5:" + "0" * 32}, "is not a sha256:<64 hex> digest", args=("wait",)
    ),
    Bad("reconcile without digest", {}, "FLUX_CI_DIGEST is not set", args=("reconcile",)),
    Bad(
        "status without source",
        {},
        "FLUX_CI_REPOSITORY is not set (in GitLab CI it defaults from CI_REGISTRY_IMAGE), and neither",
        args=("status",),
        unset=("FLUX_CI_REPOSITORY",),
    ),
    # output and dotenv
    Bad(
        "output xml",
        {"FLUX_CI_OUTPUT": "xml"},
        "FLUX_CI_OUTPUT: Input should be 'table', 'json' or 'markdown'",
    ),
    Bad("dotenv missing dir", {"FLUX_CI_DOTENV": "{tmp}/nowhere/deploy.env"}, "FLUX_CI_DOTENV: "),
    Bad("dotenv is a dir", {"FLUX_CI_DOTENV": "{tmp}"}, "is a directory"),
    Bad(
        "dotenv unwritable dir",
        {"FLUX_CI_DOTENV": "{tmp}/reports/deploy.env"},
        "is not writable",
        layout=_read_only_parent,
        as_root_skip=ROOT_READS_ALL,
    ),
    # the manifests
    Bad("path missing", {"FLUX_CI_PATH": "{tmp}/nope"}, "/nope' does not exist"),
    Bad(
        "path unreadable",
        {},
        "FLUX_CI_PATH: cannot read",
        layout=_unreadable,
        as_root_skip=ROOT_READS_ALL,
    ),
    Bad("only an empty yaml", {}, "holds no Kubernetes object", layout=_only("empty.yaml", "")),
    Bad("only non-kubernetes files", {}, "holds no Kubernetes object", layout=_non_kubernetes),
    Bad("only ignored files", {}, "holds no Kubernetes object", layout=_only(".git/cm.yaml", CONFIGMAP)),
    Bad(
        "only nested kind",
        {},
        "holds no Kubernetes object",
        layout=_only("x.yaml", "spec:\n  kind: Deployment\n"),
    ),
    # usage errors
    Bad("unknown command", {}, "No such command 'launch'", args=("launch",)),
    Bad("unknown option", {}, "No such option: --bogus", args=("push", "--bogus")),
    Bad("option without value", {}, "requires an argument", args=("push", "--timeout")),
    Bad("no command", {}, "Missing command", args=("-v",)),
]


@pytest.fixture
def tools_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """flux, oras and kubectl stand-ins that record every call and fail; PATH holds only them."""
    log = tmp_path / "tools.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("flux", "oras", "kubectl"):
        script = bin_dir / tool
        script.write_text(
            f"#!{sys.executable}\nimport sys\n"
            f"with open({str(log)!r}, 'a') as log:\n    log.write(' '.join(sys.argv) + '\\n')\n"
            "sys.exit(1)\n"
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return log


def _prepare(row: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str) -> None:
    if row.as_root_skip and os.geteuid() == 0:
        pytest.skip(row.as_root_skip)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cm.yaml").write_text(CONFIGMAP)
    env = {**VALID, "FLUX_CI_PATH": str(manifests), "FLUX_CI_OUTPUT": output}
    env |= {key: value.replace("{tmp}", str(tmp_path)) for key, value in row.env.items()}
    for key, value in env.items():
        if key not in row.unset:
            monkeypatch.setenv(key, value)
    if row.layout is not None:
        row.layout(manifests)


def _restore_permissions(tmp_path: Path) -> None:
    for path in (tmp_path / "manifests", tmp_path / "reports"):
        if path.exists():
            path.chmod(0o755)


@pytest.mark.parametrize("output", ["json", "table"])
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input_is_refused_before_any_tool_runs(
    *,
    row: Bad,
    output: str,
    tools_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _prepare(row, tmp_path, monkeypatch, output)
    try:
        code = main(list(row.args))
    finally:
        _restore_permissions(tmp_path)
    out, err = capsys.readouterr()

    assert code == row.code
    assert "Traceback" not in out + err
    json_mode = output == "json" and "FLUX_CI_OUTPUT" not in row.env
    if json_mode:
        document = json.loads(out)  # exactly one document: anything after it would not parse
        assert isinstance(document, dict)
        assert document["exit_code"] == row.code
        assert document["status"] == "failed"
        assert document["error"]["code"] == "config"
        assert row.message in document["error"]["message"]
    assert row.message in err
    if row.secret is not None:
        assert row.secret not in out + err
    ran = tools_log.read_text().splitlines() if tools_log.exists() else []
    assert all(VERSION_CHECK.search(line) for line in ran), f"a tool ran: {ran}"


VERSION_CHECK = re.compile(r"/(flux|oras|kubectl) version( --client)?( --output=json)?$")


def test_there_are_at_least_forty_bad_inputs() -> None:
    assert len(ROWS) >= 40
    assert len({row.name for row in ROWS}) == len(ROWS)
