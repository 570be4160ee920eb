"""The suite's own rules, run as CI runs them: a skip not on tests/skips.toml fails in CI mode, and an
exception in a thread fails the test that started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

from tests.skips import ALLOWLIST, allowlist, ci_mode, unexpected

ROOT = Path(__file__).parent.parent

INNER = """
import threading

import pytest


def test_skips_for_a_missing_tool():
    pytest.skip("gitlab-ci-local is missing")


def test_an_allowlisted_skip():
    pytest.skip("root reads a mode-000 directory anyway")


def test_a_worker_thread_fails():
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()


def test_passes():
    assert True
"""


def _inner_run(tmp_path: Path, *, ci: str, args: tuple[str, ...] = ()) -> dict[str, str]:
    """The outcome of each test of INNER (passed, failed, error, skipped), run by pytest with this
    repository's configuration and the skip rule, in a file at the allowlisted test's path; the
    run's output is in tmp_path/output.txt."""
    test_file = tmp_path / "tests" / "config" / "test_plan.py"
    test_file.parent.mkdir(parents=True)
    test_file.write_text(INNER.replace("test_an_allowlisted_skip", "test_a_mode_000_directory_is_unreadable"))
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "tests.skips", "-p", "no:cacheprovider", f"--junitxml={junit}", *args,
         "tests/config/test_plan.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert junit.exists(), done.stdout + done.stderr
    (tmp_path / "output.txt").write_text(done.stdout)
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(junit).iter("testcase"):  # noqa: S314 - the file pytest just wrote
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.attrib["name"]] = (
            "failed" if {"failure", "error"} & set(kinds) else (kinds or ["passed"])[0]
        )
    return outcomes


def test_in_ci_mode_a_skip_fails_unless_allowlisted(tmp_path: Path) -> None:
    outcomes = _inner_run(tmp_path, ci="true")
    assert outcomes["test_skips_for_a_missing_tool"] == "failed"
    assert outcomes["test_a_mode_000_directory_is_unreadable"] == "skipped"
    assert outcomes["test_passes"] == "passed"


def test_the_summary_counts_the_skips_of_every_worker(tmp_path: Path) -> None:
    # `make test` splits the run over workers (pytest-xdist): the count is the controller's.
    outcomes = _inner_run(tmp_path, ci="true", args=("-n", "2"))
    assert outcomes["test_skips_for_a_missing_tool"] == "failed"
    summary = (tmp_path / "output.txt").read_text()
    assert "skips in CI mode: 1 allowlisted (skips.toml), 1 unexpected (failed)" in summary


def test_outside_ci_a_skip_is_a_skip(tmp_path: Path) -> None:
    outcomes = _inner_run(tmp_path, ci="false")
    assert outcomes["test_skips_for_a_missing_tool"] == "skipped"
    assert outcomes["test_passes"] == "passed"


def test_an_exception_in_a_thread_fails_the_test_that_started_it(tmp_path: Path) -> None:
    assert _inner_run(tmp_path, ci="false")["test_a_worker_thread_fails"] == "failed"


def test_every_allowlisted_skip_names_a_test_that_exists_and_says_why() -> None:
    entries = allowlist()
    assert entries, f"{ALLOWLIST} lists nothing"
    for entry in entries:
        path, _, name = entry.test.partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {name.split('[')[0]}(" in source, f"{entry.test}: no such test"
        assert entry.reason in source, f"{entry.test}: the test never gives the reason {entry.reason!r}"
        assert len(entry.why.split()) >= 8, f"{entry.test}: say why skipping there is right"


def test_the_rules_are_matched_by_node_id_and_reason() -> None:
    entries = allowlist()
    allowed = "tests/config/test_plan.py::test_a_mode_000_directory_is_unreadable"
    assert not unexpected(allowed, "root reads a mode-000 directory anyway", entries)
    assert unexpected(allowed, "podman cannot start a container here", entries)  # another reason
    assert unexpected("tests/e2e/test_image.py::test_x", "root reads a mode-000 directory anyway", entries)
    row = "tests/cli/test_bad_inputs.py::test_bad_input_is_refused_before_any_tool_runs[path unreadable-json]"
    assert not unexpected(row, "root bypasses file permissions; tests/test_plan.py covers this", entries)
    assert unexpected(row.replace("[", "("), "root bypasses file permissions", entries)
    assert ci_mode({"CI": "true"})
    assert not ci_mode({"CI": ""})
    assert not ci_mode({})
