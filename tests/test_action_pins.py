"""Every GitHub action that action.yml and the example workflows use is pinned to a full commit SHA,
with the release tag it stands for in a comment (`uses: owner/repo@<40 hex> # v1.2.3`): a tag can be
moved to other code, a commit cannot, and supply-chain guidance asks for exactly this form.

The one exception is flux-ci's own action in the examples, shown at its release version: the commit
of a release tag is only known once the tag exists (docs/install.md says how to pin it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.sandbox.versions import read_versions

ROOT = Path(__file__).parent.parent
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")
_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@(?P<sha>[0-9a-f]{40})$")
_VERSION_COMMENT = re.compile(r"^v?\d+\.\d+\.\d+$")
_OWN_ACTION = re.compile(r"^flux-ci/flux-ci@\d+\.\d+\.\d+$")


def workflow_files() -> list[Path]:
    """action.yml and every GitHub workflow under examples/ (a YAML file with `jobs:` and `on:`)."""
    found = [ROOT / "action.yml"]
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        documents = list(YAML(typ="safe").load_all(path.read_text(encoding="utf-8")))
        # A workflow is one document with `jobs:` and `on:` (which YAML 1.1 may read as True).
        if len(documents) == 1 and isinstance(documents[0], dict) and "jobs" in documents[0]:
            found.append(path)
    return found


def uses_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, reference, comment) of each `uses:` in the file."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        found = _USES.match(line)
        if found:
            lines.append((number, found["ref"], (found["comment"] or "").strip()))
    return lines


def pin_problem(reference: str, comment: str) -> str | None:
    """Why a `uses:` reference is not pinned as it must be, or None."""
    if reference.startswith("./"):
        return None  # a local action is the same commit as the workflow
    if reference.startswith("docker://"):
        return None if "@sha256:" in reference else "a container action must name its digest (@sha256:...)"
    if _OWN_ACTION.match(reference):
        return None
    if not _PINNED.match(reference):
        return "not pinned to a full commit SHA (owner/repo@<40 hex characters>)"
    if not _VERSION_COMMENT.match(comment.split(maxsplit=1)[0] if comment else ""):
        return "the pinned commit needs its release tag in a comment (# v1.2.3)"
    return None


def test_the_workflow_files_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in workflow_files()}
    assert {"action.yml", "examples/github-workflow.yml"} <= names


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_uses_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    uses = uses_lines(path)
    assert uses, f"no `uses:` found in {path}"
    problems = [
        f"{path.name}:{number}: {reference}: {problem}"
        for number, reference, comment in uses
        if (problem := pin_problem(reference, comment))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("reference", "comment"),
    [
        ("actions/setup-python@v6", ""),
        ("actions/setup-python@v6.3.0", ""),
        ("actions/setup-python@ece7cb06", "v6.3.0"),  # a short SHA can collide
        ("actions/setup-python@main", ""),
        ("actions/setup-python@ece7cb06caefa5fff74198d8649806c4678c61a1", ""),  # which version?
        ("docker://alpine:3.20", ""),
    ],
)
def test_a_tag_a_branch_a_short_sha_or_an_unlabelled_sha_is_refused(reference: str, comment: str) -> None:
    assert pin_problem(reference, comment) is not None


def test_the_flux_action_is_the_pinned_flux_release() -> None:
    """The flux2 action's tag is the flux CLI this project is tested with (.ci/versions.env)."""
    flux = [(ref, comment) for _, ref, comment in uses_lines(ROOT / "action.yml") if "fluxcd/flux2" in ref]
    assert flux
    assert [comment.split()[0] for _, comment in flux] == [f"v{read_versions()['FLUX_VERSION']}"]
    inputs = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))["inputs"]
    assert inputs["flux-version"]["default"] == read_versions()["FLUX_VERSION"]
    assert inputs["oras-version"]["default"] == read_versions()["ORAS_VERSION"]
    assert inputs["kubectl-version"]["default"] == read_versions()["KUBERNETES_VERSION"]
