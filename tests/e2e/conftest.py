"""Fixtures that run the real sandbox for end-to-end tests (see tests/sandbox)."""

from __future__ import annotations

import atexit
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.project import Project
from tests.sandbox import SandboxClient, down, unique_name, up
from tests.sandbox.procs import sigterm_as_interrupt

SANDBOX_KEY = pytest.StashKey[SandboxClient]()
SECOND_CLUSTER_KEY = pytest.StashKey[SandboxClient]()
THIRD_CLUSTER_KEY = pytest.StashKey[SandboxClient]()
# Whose controller logs a failing test's report gets: the clusters whose fixture it uses.
_LOGGED_CLUSTERS = (
    (SANDBOX_KEY, "sandbox"),
    (SECOND_CLUSTER_KEY, "second_cluster"),
    (THIRD_CLUSTER_KEY, "third_cluster"),
)


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SandboxClient]:
    """A fresh sandbox for the whole session, in its own temp state dir.

    Teardown happens in three layers: this finalizer (also on Ctrl-C, and on SIGTERM, which is
    turned into KeyboardInterrupt), atexit, and the kernel killing every component when the pytest
    process dies without running either (die_with_parent).
    """
    state_dir = tmp_path_factory.mktemp("sandbox")
    atexit.register(down, state_dir)
    with sigterm_as_interrupt():
        client = SandboxClient(up(state_dir, die_with_parent=True))
        request.config.stash[SANDBOX_KEY] = client
        try:
            yield client
        finally:
            del request.config.stash[SANDBOX_KEY]
            down(state_dir, remove=False)  # pytest's temp retention removes it; logs stay till then
            atexit.unregister(down)


@pytest.fixture(scope="session")
def second_cluster(sandbox: SandboxClient, request: pytest.FixtureRequest) -> Iterator[SandboxClient]:
    """The sandbox's second cluster (context `flux-ci-sandbox-2`), started when a test first asks.

    Its own API server and source-, kustomize- and helm-controller, the registry shared. It joins
    the session's sandbox, so the sandbox's teardown (down, atexit, die_with_parent) stops it too.
    """
    client = sandbox.start_second_cluster()
    request.config.stash[SECOND_CLUSTER_KEY] = client
    yield client
    del request.config.stash[SECOND_CLUSTER_KEY]


@pytest.fixture(scope="session")
def third_cluster(second_cluster: SandboxClient, request: pytest.FixtureRequest) -> Iterator[SandboxClient]:
    """The sandbox's third cluster (context `flux-ci-sandbox-3`), for a fleet sharded over jobs: like
    the second, started when a test first asks, and stopped with the sandbox."""
    client = second_cluster.start_cluster(3)
    request.config.stash[THIRD_CLUSTER_KEY] = client
    yield client
    del request.config.stash[THIRD_CLUSTER_KEY]


@pytest.fixture
def namespace(sandbox: SandboxClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, named after it."""
    name = unique_name(request.node.name)
    sandbox.create_namespace(name)
    yield name
    sandbox.delete_namespace(name)


@pytest.fixture
def repository(sandbox: SandboxClient, request: pytest.FixtureRequest) -> str:
    """A registry repository path (`e2e/<test>-<hex>`) no other test pushes to."""
    return sandbox.unique_repository(request.node.name)


@pytest.fixture
def docker_config(sandbox: SandboxClient, tmp_path: Path) -> Path:
    """A DOCKER_CONFIG dir logged in to the sandbox registry (password via stdin)."""
    return sandbox.login(tmp_path / "docker-config")


@pytest.fixture
def project(sandbox: SandboxClient, namespace: str, repository: str, tmp_path: Path) -> Project:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    project = Project(sandbox, namespace, repository, manifests)
    project.write("hello")
    sandbox.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    return project


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, add the controllers' last log lines: they usually say why."""
    report = yield
    if not report.failed:
        return report
    for key, fixture in _LOGGED_CLUSTERS:
        client = item.config.stash.get(key, None)
        if client is not None and fixture in getattr(item, "fixturenames", ()):
            for name, tail in client.log_tails().items():
                report.sections.append((f"{name} log (last lines)", tail or "(empty)"))
    return report
