"""The README, docs/, the examples and the Dockerfile cannot drift from the code.

The README is the front door: what flux-ci is, the two commands, a GitLab job and a GitHub step, the
contract, every exit code and every variable. docs/ holds the rest, and every page is reachable
from the README; every relative link resolves, anchors included (GitHub's and GitLab's heading ids).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from flux_ci.cli.app import app
from flux_ci.config.ci import CI_FALLBACKS, RECEIVER_OIDC_TOKEN_VARIABLE
from flux_ci.config.names import variable_name
from flux_ci.config.settings import Settings, variable_of
from flux_ci.errors import ExitCode
from flux_ci.report import models
from flux_ci.report.dotenv import report_values, to_dotenv
from flux_ci.report.models import Artifact, ObjectRef, Report, SourceState
from flux_ci.report.render import to_json
from tests.test_architecture import FLOORS

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "flux_ci"
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
README_MAX_LINES = 350
_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)
_VARIABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| (.*?) \| (.*) \|$", re.MULTILINE)


def _doc(name: str) -> str:
    return (DOCS / name).read_text()


def _pages() -> dict[Path, str]:
    """Every Markdown page a reader follows: the README, the changelog and docs/."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    return {page: page.read_text() for page in pages}


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` in YAML is no heading, `[x](y)` no link)."""
    return _FENCED.sub("", text)


def _section(text: str, title: str) -> str:
    """The body under the heading `title`, up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}$", text, re.MULTILINE)
    assert match, f"no heading {title!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def _anchor(heading: str) -> str:
    """The id GitHub and GitLab give a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in _HEADING.findall(_prose(text)):
        anchor = _anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def _variable_table(text: str) -> dict[str, tuple[str, str]]:
    """`| \\`VAR\\` | default | meaning |` rows: variable → (default, meaning)."""
    return {name: (default, meaning) for name, default, meaning in _VARIABLE_ROW.findall(text)}


def _duration(seconds: float) -> str:
    if seconds == 0:
        return "0"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _default_text(value: object) -> str:
    """A default as the tables write it: `false`, `5m`, `latest`, `flux-system`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _duration(value)
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _versions() -> dict[str, str]:
    lines = (ROOT / ".ci/versions.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return dict(pairs)


# --- the README is a front door ---------------------------------------------------------------------


def test_readme_is_a_front_door() -> None:
    lines = len(README.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to docs/"


def test_the_two_commands_a_gitlab_job_and_a_github_step_are_shown() -> None:
    assert "make demo" in README
    assert "make test" in README
    assert "script:\n    - flux-ci deploy" in README
    assert "uses: flux-ci/flux-ci@" in README


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in _LINK.findall(_prose(README))}
    orphans = [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked]
    assert orphans == []


# --- every variable, exit code, command and make target ----------------------------------------------


def test_every_variable_is_in_the_readme_table_and_in_the_configuration_reference() -> None:
    variables = {variable_of(name) for name in Settings.model_fields}
    readme = _variable_table(_section(README, "Configuration"))
    reference = _variable_table(_section(_doc("configuration.md"), "Variables"))
    assert set(readme) == variables, "the README's variable table"
    assert set(reference) == variables, "docs/configuration.md's variable table"


def test_documented_defaults_are_the_code_defaults() -> None:
    tables = {
        "README.md": _variable_table(_section(README, "Configuration")),
        "docs/configuration.md": _variable_table(_section(_doc("configuration.md"), "Variables")),
    }
    for field_name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        variable = variable_of(field_name)
        for where, table in tables.items():
            assert variable in table, f"{where}: {variable} missing"
            cell = table[variable][0]
            if default is not None:
                assert f"`{_default_text(default)}`" in cell, f"{where}: {variable} defaults to {default!r}"
            fallbacks = re.findall(r"[A-Z][A-Z0-9_]+", CI_FALLBACKS.get(field_name, ""))
            if field_name == "receiver_oidc_token":
                fallbacks.append(RECEIVER_OIDC_TOKEN_VARIABLE)
            for fallback in fallbacks:
                assert fallback in cell, f"{where}: {variable} falls back to {fallback}"


def test_every_exit_code_is_documented() -> None:
    rows = re.findall(r"^\| ([\d, ]+) \|", README, re.MULTILINE)
    documented = {int(code) for row in rows for code in row.split(",")}
    assert documented == {int(code) for code in ExitCode}


def test_every_command_is_documented() -> None:
    commands = _doc("commands.md")
    for command in app.registered_commands:
        assert command.callback is not None
        name = f"`flux-ci {command.callback.__name__}`"
        assert name in README
        assert name in commands


def test_every_make_target_is_documented() -> None:
    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.MULTILINE)
    development = _doc("development.md")
    assert targets
    for target in targets:
        assert f"make {target}" in README or f"make {target}" in development, target
    listed = re.findall(r"^\| `make ([a-z-]+)` \|", development, re.MULTILINE)
    assert sorted(listed) == sorted(targets), "docs/development.md's table of targets"


def test_every_dotenv_key_and_json_field_is_documented() -> None:
    output = _doc("output.md")
    dotenv = _section(output, "Dotenv")
    for key in report_values(Report(command="deploy")):
        assert f"`{key}`" in dotenv, key
    json_section = _section(output, "JSON")
    for key in _json_keys(to_json(_full_report())):
        assert f"`{key}`" in json_section, key


def _full_report() -> Report:
    """A report with every part filled in, so its JSON holds every field."""
    ref = ObjectRef("Kustomization", "n", "app")
    error = models.ErrorInfo("timeout", "m", retryable=True, superseded_by="sha256:1")
    return Report(
        command="diff",
        artifact=Artifact("oci://r/a", ("t",), "sha256:0", "s", "r", files=1, objects=1),
        sources=[SourceState(ObjectRef("OCIRepository", "n", "a"), "u", "t", "True", "m", cluster="c")],
        consumers=[
            models.ConsumerState(ref, "t@sha256:0", "True", "m", cluster="c", checks=models.Checks.APPLY)
        ],
        steps=[models.Step("push", models.StepStatus.OK, 0.1, cluster="c")],
        checks=[models.Check("flux installed", ok=True, detail="2.9.3")],
        scope=["s"],
        notes=["n"],
        error=error,
        diagnostics=[
            models.Diagnostic(ref, "m", "r", ("c",), ("e",), (models.FailingObject(ref, "s", ("e",)),))
        ],
        changed=True,
        changes=[models.Change(ref, "ConfigMap/n/c", models.ChangeKind.DRIFTED, "d", cluster="c")],
        clusters=[models.ClusterOutcome("c", models.ClusterStatus.FAILED, 8, error)],
        tag_moves=[models.TagMove("latest", "sha256:1", "sha256:0")],
        rollback=models.Rollback(models.RollbackStatus.ROLLED_BACK, "sha256:0", "sha256:1", ("latest",), "m"),
        history=[models.HistoryEntry(ref, "t@sha256:0", "sha256:0", "s", "t0", "t1", cluster="c")],
    )


def test_every_json_field_of_history_is_documented() -> None:
    """`history` rows and `changes` are each their own command's: both documents hold every field."""
    json_section = _section(_doc("output.md"), "JSON")
    history = _full_report()
    history.command = "history"
    for key in _json_keys(to_json(history)):
        assert f"`{key}`" in json_section, key


def _json_keys(document: str) -> set[str]:
    keys: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(document))
    return keys


# --- the layout by wing --------------------------------------------------------------------------------


def test_every_wing_and_module_is_in_the_layout() -> None:
    development = _doc("development.md")
    layout = _section(development, "The modules")
    modules = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }
    documented = set(re.findall(r"^\| `([\w/]+\.py)` \|", layout, re.MULTILINE))
    assert documented == modules, f"missing: {modules - documented}, gone: {documented - modules}"
    for wing in (init.parent.name for init in PACKAGE.glob("*/__init__.py")):
        assert f"`flux_ci/{wing}/`" in layout, wing


def test_the_floors_are_those_the_architecture_test_enforces() -> None:
    table = _section(_doc("development.md"), "The floors")
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table, re.MULTILINE)
    documented = [tuple(re.findall(r"`([^`]+)`", units)) for _, units in rows]
    assert [int(floor) for floor, _ in rows] == list(range(len(FLOORS)))
    assert documented == [tuple(unit.removeprefix("flux_ci.") for unit in floor) for floor in FLOORS]


# --- links, versions, examples, the image ------------------------------------------------------------


def test_every_relative_link_resolves() -> None:
    pages = _pages()
    broken = []
    for page, text in pages.items():
        for target in _LINK.findall(_prose(text)):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_anchors_are_the_same_on_github_and_gitlab() -> None:
    # GitLab also folds repeated hyphens into one; GitHub does not. A heading whose id has "--"
    # would have two different ids, and a link to it would break on one of them.
    for page, text in _pages().items():
        doubled = [anchor for anchor in _anchors(text) if "--" in anchor]
        assert doubled == [], page.name


def test_versions_table_matches_the_versions_file() -> None:
    tools = {
        "FLUX_VERSION": "flux CLI",
        "SOURCE_CONTROLLER_VERSION": "source-controller",
        "KUSTOMIZE_CONTROLLER_VERSION": "kustomize-controller",
        "HELM_CONTROLLER_VERSION": "helm-controller",
        "NOTIFICATION_CONTROLLER_VERSION": "notification-controller",
        "ORAS_VERSION": "oras",
        "COSIGN_VERSION": "cosign",
        "KUBERNETES_VERSION": "kube-apiserver, kubectl",
        "ETCD_VERSION": "etcd",
        "TOXIPROXY_VERSION": "toxiproxy",
    }
    versions = _versions()
    assert set(versions) == set(tools), "a new pin needs its row in docs/development.md"
    table = _section(_doc("development.md"), "Tools and versions")
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", table, re.MULTILINE))
    for key, tool in tools.items():
        assert rows.get(tool) == versions[key], f"{tool}: {rows.get(tool)} documented, {versions[key]} pinned"


# --- the contract, test by test ----------------------------------------------------------------------

_CONTRACT_RULE = re.compile(r"^(\d+)\. \*\*(.+?)\*\*", re.MULTILINE)
_CONTRACT_ROW = re.compile(r"^\| (\d+) \| (.+?) \| (.+) \|$", re.MULTILINE)
_TEST_ID = re.compile(r"`(tests/e2e/[\w/]+\.py)::(test_\w+)`")


def contract_rules() -> dict[int, str]:
    """The README's numbered contract: number → its bold title."""
    return {int(number): title for number, title in _CONTRACT_RULE.findall(_section(README, "The contract"))}


def contract_coverage(table: str) -> dict[int, list[tuple[str, str]]]:
    """docs/contract.md: rule number → the (file, test) pairs its rows name."""
    covered: dict[int, list[tuple[str, str]]] = {}
    for number, _clause, cell in _CONTRACT_ROW.findall(table):
        covered.setdefault(int(number), []).extend(_TEST_ID.findall(cell))
    return covered


def test_every_rule_of_the_contract_has_end_to_end_tests_that_exist() -> None:
    rules = contract_rules()
    assert sorted(rules) == list(range(1, len(rules) + 1)), "the contract's rules are numbered 1..n"
    covered = contract_coverage(_doc("contract.md"))
    assert sorted(covered) == sorted(rules), "docs/contract.md: a row for every rule, and no other"
    for number, tests in covered.items():
        assert tests, f"rule {number} ({rules[number]}) names no end-to-end test"
        for path, name in tests:
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {name}\(", source, re.MULTILINE), (
                f"rule {number}: {path}::{name} does not exist"
            )
            assert "pytestmark = pytest.mark.e2e" in source, f"{path} is not an end-to-end test file"


def test_the_contract_table_check_fails_on_a_rule_without_tests_or_a_missing_test() -> None:
    good = "| 1 | a | `tests/e2e/test_deploy.py::test_deploy_applies_exactly_the_pushed_digest` |\n"
    assert contract_coverage(good) == {
        1: [("tests/e2e/test_deploy.py", "test_deploy_applies_exactly_the_pushed_digest")]
    }
    assert contract_coverage("| 2 | b | none yet |\n") == {2: []}


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_example_pipeline_reads_only_variables_the_dotenv_report_writes() -> None:
    pipeline = (ROOT / "examples/.gitlab-ci.yml").read_text()
    report = Report(
        command="deploy",
        artifact=Artifact("oci://r/a", ("t",), "sha256:" + "0" * 64, "s", "main@sha1:abc"),
        sources=[SourceState(ObjectRef("OCIRepository", "n", "a"), "u", "t@sha256:x", "True", "m")],
    )
    written = {line.split("=", 1)[0] for line in to_dotenv(report).splitlines()}
    inputs = {variable_name(name) for name in Settings.model_fields}
    used = set(re.findall(r"\$\{?(FLUX_CI_[A-Z_]+)", pipeline))
    assert used
    assert used <= written | inputs


def test_dockerfile_builds_the_pinned_tools_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The official bases by default; CI builds against local stand-ins (tests/e2e/test_image.py).
    assert "ARG GO_IMAGE=golang:1.26-bookworm" in dockerfile
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)[-1] == "${PYTHON_IMAGE}"
    # The tools stage compiles the pinned tools, unless `--build-context tools=DIR` replaces it.
    assert "COPY .ci/versions.env .ci/build-tools.sh" in dockerfile
    assert ".ci/build-tools.sh flux oras kubectl cosign" in dockerfile
    assert re.search(r"^FROM scratch AS tools$", dockerfile, re.MULTILINE)
    assert "COPY --from=tools /flux /oras /kubectl /cosign /usr/local/bin/" in dockerfile
    assert "cosign version" in dockerfile  # the image proves every tool runs
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert "ENTRYPOINT [" not in dockerfile  # GitLab needs the shell for `script:`
    # Everything the build copies from the context gets past .dockerignore (an allowlist).
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"
    }
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE)
        for source in line.split()
    }
    assert copied
    assert copied <= allowed, copied - allowed
