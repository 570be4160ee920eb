"""The tools' version checks: started before the settings are read, and ended by the command's
deadline like every other child, never by a fixed cap of their own."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flux_ci.deadline import Deadline
from flux_ci.errors import DeadlineExceededError, ToolError
from flux_ci.secrets import Masker
from flux_ci.tools import toolcheck
from flux_ci.tools.runner import Runner
from flux_ci.tools.supervise import ProcessGroup
from tests.tools.children import GRACE_S, PY


def _runner_with(tmp_path: Path, script: str, deadline: float) -> Runner:
    """A runner whose PATH holds a FAKE `flux` (a real one never hangs on `flux version --client`)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "flux").write_text(f"#!{PY}\n{script}\n")
    (tools / "flux").chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    return Runner(masker=Masker(), env=env, group=ProcessGroup(grace_s=GRACE_S), deadline=Deadline(deadline))


def test_a_hung_version_check_ends_with_the_commands_deadline(tmp_path: Path) -> None:
    runner = _runner_with(tmp_path, "import time; time.sleep(60)", deadline=1.0)
    started = time.monotonic()
    checks = toolcheck.prefetch(runner, ["flux"])
    with pytest.raises(DeadlineExceededError):
        toolcheck.require_tools(runner, checks, ["flux"])
    assert time.monotonic() - started < 1.0 + GRACE_S + 3


def test_a_slow_version_check_within_the_deadline_is_waited_for(tmp_path: Path) -> None:
    answer = 'import json, time; time.sleep(1.5); print(json.dumps({"flux": "v2.9.3"}))'
    runner = _runner_with(tmp_path, answer, deadline=30)
    assert toolcheck.require_tools(runner, toolcheck.prefetch(runner, ["flux"]), ["flux"]) == {
        "flux": "2.9.3"
    }


def test_a_missing_tool_is_a_tool_error(tmp_path: Path) -> None:
    runner = Runner(
        masker=Masker(),
        env={"PATH": str(tmp_path)},
        group=ProcessGroup(grace_s=GRACE_S),
        deadline=Deadline(30),
    )
    with pytest.raises(ToolError, match="flux not found on PATH"):
        toolcheck.require_tools(runner, toolcheck.prefetch(runner, ["flux"]), ["flux"])
