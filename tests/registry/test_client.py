"""Each registry call's timeout is cut from the command's deadline, never a fixed cap: the push may
take all the time left, a small request its share (`Deadline.attempt`), and one that hangs is cut
there and tried again. The real runner runs a FAKE `oras`/`flux` on PATH (a stand-in for a registry
that accepts the connection and never answers, which the e2e tests make real with the sandbox's)."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pytest

from flux_ci.config.settings import Settings
from flux_ci.errors import RegistryError
from flux_ci.registry.client import Registry
from flux_ci.registry.credentials import RegistryAuth
from flux_ci.secrets import Masker
from flux_ci.tools.runner import Runner
from flux_ci.tools.supervise import ProcessGroup
from tests.fakes import make_context
from tests.golden import DATA
from tests.tools.children import GRACE_S, PY

REPOSITORY = "oci://registry.example.com/group/app"
DIGEST = "sha256:" + "ab" * 32


def _registry(tmp_path: Path, deadline_s: float, **tools: str) -> tuple[Registry, io.StringIO]:
    """A registry client whose `oras`/`flux` are the FAKE scripts given (Python source)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in tools.items():
        (bin_dir / name).write_text(f"#!{PY}\n{script}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    runner = Runner(masker=Masker(), env=env, group=ProcessGroup(grace_s=GRACE_S))
    out = io.StringIO()
    ctx = make_context(Settings(repository=REPOSITORY), runner, seconds=deadline_s, out=out)
    return Registry(ctx, RegistryAuth(None, plain_http=False)), out


def _hangs_once(state: Path, answer: str) -> str:
    """The first call hangs (the registry accepted the connection and never answers); later ones answer."""
    return (
        "import os, sys, time\n"
        f"if not os.path.exists({str(state)!r}):\n"
        f"    open({str(state)!r}, 'w').close()\n"
        "    time.sleep(120)\n"
        f"print({answer!r})\n"
    )


def test_a_hung_request_is_cut_at_its_share_of_the_time_left_and_tried_again(tmp_path: Path) -> None:
    registry, out = _registry(tmp_path, 8.0, oras=_hangs_once(tmp_path / "called", DIGEST))
    started = time.monotonic()
    assert registry.resolve(REPOSITORY, "latest") == DIGEST
    took = time.monotonic() - started
    assert 3.5 <= took < 8.0  # cut at half of the 8 s (plus its grace), not at the deadline
    assert re.search(
        r"registry unreachable \(no answer: timed out after [34]\.\ds running: oras resolve", out.getvalue()
    )


def test_a_registry_that_never_answers_is_unreachable_and_retryable_within_the_deadline(
    tmp_path: Path,
) -> None:
    registry, _ = _registry(tmp_path, 3.0, oras="import time; time.sleep(120)")
    started = time.monotonic()
    with pytest.raises(RegistryError, match="stayed unreachable: no answer") as raised:
        registry.resolve(REPOSITORY, "latest")
    assert raised.value.retryable
    assert time.monotonic() - started < 3.0 + GRACE_S + 2


def test_the_push_may_take_all_the_time_left(tmp_path: Path) -> None:
    # 2.5 s of a 4 s deadline: more than a small request's share, which would cut it at 2 s.
    pushed = (DATA / "flux/push-artifact.json").read_text()
    registry, _ = _registry(tmp_path, 4.0, flux=f"import time; time.sleep(2.5); print({pushed!r})")
    assert registry.push(["flux", "push", "artifact"]).startswith("sha256:")
