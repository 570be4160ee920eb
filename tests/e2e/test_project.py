"""The helpers tests lean on for their claims: a check that nothing was pushed must be able to fail."""

from __future__ import annotations

import json

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient

pytestmark = pytest.mark.e2e


def test_absent_is_the_registrys_answer_and_could_not_ask_fails_the_test(
    project: Project, sandbox: SandboxClient
) -> None:
    assert project.absent("c1")
    pushed = project.flux_ci("push", env=project.env(FLUX_CI_EXTRA_TAGS="none"))
    assert pushed.exit_code == 0, pushed.stderr
    assert not project.absent("c1")
    assert project.pushed("c1")
    # Refused credentials: the registry says 401 for every tag, present or not. Not "absent".
    refused = project.manifests.parent / "resolve-config" / "config.json"
    auth = {"auths": {sandbox.registry: {"auth": "bm9ib2R5Om5vdC10aGUtcGFzc3dvcmQ="}}}  # nobody:...
    saved = refused.read_text()
    refused.write_text(json.dumps(auth))
    with pytest.raises(AssertionError, match="could not ask the registry"):
        project.absent("c1")
    refused.write_text(saved)
    # The registry down: connection refused. Not "absent" either.
    sandbox.stop("registry")
    try:
        with pytest.raises(AssertionError, match="could not ask the registry"):
            project.absent("never-pushed")
    finally:
        sandbox.restart("registry")
    assert project.absent("never-pushed")
