"""The sandbox's env file names every address a person may need, and `make demo`'s lighter sandbox.

Without the e2e marker: a sandbox started with some controllers only (`make demo`: source and
kustomize) is reused for a request it covers, and restarted for one that needs more. With it: the
env file of the session's sandbox exports the Receiver webhook URL (and the other servers'), each
answering HTTP where it says.
"""

from __future__ import annotations

import shlex
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.sandbox import SandboxClient
from tests.sandbox.controllers import CONTROLLERS
from tests.sandbox.lifecycle import reusable
from tests.sandbox.state import RegistryInfo, SandboxState, exported_variables
from tests.sandbox.versions import read_versions

ADDRESSES = (
    "FLUX_CI_SANDBOX_REGISTRY_URL",
    "FLUX_CI_SANDBOX_API_SERVER",
    "FLUX_CI_SANDBOX_RECEIVER_URL",
    "FLUX_CI_SANDBOX_EVENTS_URL",
    "FLUX_CI_SANDBOX_ARTIFACT_URL",
)


def _state(controllers: list[str]) -> SandboxState:
    return SandboxState(
        state_dir=Path("/nonexistent"),
        registry=RegistryInfo("127.0.0.1", 5000, "u", "p"),
        kubeconfig=Path("/nonexistent/kubeconfig"),
        versions=read_versions(),
        controllers=controllers,
    )


def test_a_demo_sandbox_serves_the_demo_but_not_a_full_sandbox_up() -> None:
    demo = _state(["source-controller", "kustomize-controller"])
    assert reusable(demo, anonymous=False, controllers=["source-controller", "kustomize-controller"])
    assert not reusable(demo, anonymous=False, controllers=CONTROLLERS)
    full = _state(list(CONTROLLERS))
    assert reusable(full, anonymous=False, controllers=["source-controller", "kustomize-controller"])


def test_without_notification_controller_no_receiver_url_is_exported() -> None:
    variables = exported_variables(_state(["source-controller", "kustomize-controller"]))
    assert "FLUX_CI_SANDBOX_RECEIVER_URL" not in variables
    assert variables["FLUX_CI_SANDBOX_REGISTRY_URL"] == "http://127.0.0.1:5000"


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status: a webhook path refuses a GET)."""
    try:
        with urllib.request.urlopen(url, timeout=10):  # noqa: S310 - loopback http by construction
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.mark.e2e
def test_env_file_exports_every_address_and_each_answers(sandbox: SandboxClient) -> None:
    exported = {}
    for line in sandbox.env_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exported[name] = shlex.split(value)[0] if value else ""
    assert set(ADDRESSES) <= set(exported), sorted(exported)
    assert exported["FLUX_CI_SANDBOX_RECEIVER_URL"] == sandbox.receiver_url
    assert 'FLUX_CI_RECEIVER_URL="$FLUX_CI_SANDBOX_RECEIVER_URL"' in sandbox.env_file.read_text(
        encoding="utf-8"
    )
    for name in ADDRESSES:
        if name != "FLUX_CI_SANDBOX_API_SERVER":  # https with the sandbox's own CA
            assert _answers(exported[name]), f"{name}={exported[name]} does not answer"
    assert exported["FLUX_CI_SANDBOX_API_SERVER"].startswith("https://127.0.0.1:")
