"""flux-ci inside a real CI job: the job's own time limit, a job cancelled by a signal, a registry that
stalls, and what a job log may show. End to end against the sandbox's real registry, API server and
Flux controllers; the figures each test measures are printed (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.project import KUSTOMIZATIONS, Project, Running
from tests.sandbox import SandboxClient, unique_name

pytestmark = pytest.mark.e2e

SIGNAL_EXIT_S = 5.0  # the promise: exited, and nothing it started left, within 5 s of the signal


def _hold_back(project: Project) -> None:
    """A dependency that never exists holds the Kustomization back: flux-ci waits, its watches run."""
    project.patch(KUSTOMIZATIONS, "app", {"spec": {"dependsOn": [{"name": "not-yet"}]}})


# --- the job's own time limit --------------------------------------------------------------------


def _job_env(left_s: float, timeout_s: int = 3600) -> tuple[dict[str, str], datetime]:
    """GitLab's variables for a job with `left_s` seconds left (CI_JOB_STARTED_AT has whole seconds,
    as GitLab writes it); and the moment GitLab would kill that job."""
    started = (datetime.now(UTC) - timedelta(seconds=timeout_s - left_s)).replace(microsecond=0)
    env = {"CI_JOB_TIMEOUT": str(timeout_s), "CI_JOB_STARTED_AT": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return env, started + timedelta(seconds=timeout_s)


def test_a_job_with_25s_left_ends_by_itself_with_exit_8_and_its_report_before_the_job_ends(
    project: Project, tmp_path: Path
) -> None:
    _hold_back(project)
    dotenv = tmp_path / "deploy.env"
    job, job_end = _job_env(left_s=25)
    env = project.env(FLUX_CI_TIMEOUT="10m", FLUX_CI_DOTENV=str(dotenv), **job)
    run = project.flux_ci("-v", "deploy", env=env)
    ended = datetime.now(UTC)
    margin = (job_end - ended).total_seconds()
    print(f"job with 25s left: exit {run.exit_code} after {run.seconds:.1f}s, {margin:.1f}s before its end")
    assert run.exit_code == 8, run.stderr
    report = run.json()
    assert report["deadline"]["source"] == "job"
    assert 5 <= report["deadline"]["seconds"] <= 13  # 25 s left (less the moment to start), 12 s reserve
    assert "timed out after" in report["error"]["message"]
    assert report["error"]["retryable"]
    assert report["artifact"]["digest"]  # it did push and wait: 13 s were enough to try
    assert "fitted to the CI job" in run.stderr
    assert "FLUX_CI_EXIT_CODE=8" in dotenv.read_text().splitlines()
    assert datetime.fromtimestamp(dotenv.stat().st_mtime, UTC) < job_end
    assert margin > 0, f"flux-ci ended {-margin:.1f}s after GitLab would have killed the job"


def test_a_job_with_too_little_time_left_is_exit_8_before_anything_is_pushed(
    project: Project, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    job, _ = _job_env(left_s=15)
    run = project.flux_ci("deploy", env=project.env(FLUX_CI_TIMEOUT="10m", FLUX_CI_DOTENV=str(dotenv), **job))
    print(f"job with 15s left: exit {run.exit_code} after {run.seconds:.1f}s")
    assert run.exit_code == 8, run.stderr
    message = run.json()["error"]["message"]
    assert "too little time left in the CI job to push and wait" in message
    assert "FLUX_CI_TIMEOUT is 600s" in message
    assert "CI_JOB_TIMEOUT=3600s" in message
    assert run.json()["artifact"] is None
    assert not project.pushed("c1")
    assert "FLUX_CI_EXIT_CODE=8" in dotenv.read_text().splitlines()


# --- a cancelled job leaves nothing behind -------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it; (pid, start time) names it even after its pid is reused."""

    pid: int
    ppid: int
    start: int
    zombie: bool

    @classmethod
    def read(cls, pid: int) -> Proc | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return cls(pid, int(fields[1]), int(fields[19]), fields[0] == "Z")


def _processes() -> list[Proc]:
    found = (Proc.read(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [proc for proc in found if proc is not None]


def _descendants(root: int) -> set[tuple[int, int]]:
    """Every living process whose parent chain leads to `root`, as (pid, start time)."""
    procs = _processes()
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found: set[tuple[int, int]] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if not child.zombie and (child.pid, child.start) not in found:
                found.add((child.pid, child.start))
                todo.append(child.pid)
    return found


def _alive(named: set[tuple[int, int]]) -> set[tuple[int, int]]:
    alive = set()
    for pid, start in named:
        proc = Proc.read(pid)
        if proc is not None and proc.start == start and not proc.zombie:
            alive.add((pid, start))
    return alive


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _marked(marker: str, wrapper: Path) -> list[int]:
    """Living processes that run the wrapper, or carry the marker it exports to the real kubectl."""
    pids = []
    for proc in _processes():
        if proc.zombie:
            continue
        cmdline = _read_bytes(f"/proc/{proc.pid}/cmdline")
        environ = _read_bytes(f"/proc/{proc.pid}/environ")
        if str(wrapper).encode() in cmdline or marker.encode() in environ:
            pids.append(proc.pid)
    return pids


def _wait(check: Callable[[], object], *, until: float) -> bool:
    while time.monotonic() < until:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture
def deaf_kubectl(tmp_path: Path, project: Project) -> Iterator[tuple[Path, str]]:
    """A `kubectl` wrapper first on PATH, as CI images have them (auth wrappers, version shims): it
    ignores SIGTERM and runs the real kubectl as its child (which inherits the ignored SIGTERM).
    Yields the wrapper and the marker its kubectl carries; whatever is left afterwards is killed."""
    real = shutil.which("kubectl", path=project.sandbox.env["PATH"])
    assert real is not None
    marker = f"flux-ci-e2e-{uuid.uuid4().hex}"
    tools = tmp_path / "wrapper-bin"
    tools.mkdir()
    wrapper = tools / "kubectl"
    wrapper.write_text(f'#!/bin/sh\ntrap \'\' TERM\nexport E2E_KUBECTL_MARKER={marker}\n"{real}" "$@"\n')
    wrapper.chmod(0o755)
    yield wrapper, marker
    for pid in _marked(marker, wrapper):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wrapped_env(project: Project, wrapper: Path, tmp: Path) -> dict[str, str]:
    return project.env(
        FLUX_CI_TIMEOUT="120s",
        PATH=f"{wrapper.parent}{os.pathsep}{project.sandbox.env['PATH']}",
        TMPDIR=str(tmp),
    )


SIGNALS = [(signal.SIGTERM, 143, "sigterm"), (signal.SIGINT, 130, "sigint")]


@pytest.mark.parametrize("signalled", SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_waiting_leaves_no_process_even_behind_a_wrapper_ignoring_sigterm(
    project: Project, deaf_kubectl: tuple[Path, str], tmp_path: Path, signalled: tuple[int, int, str]
) -> None:
    signum, code, name = signalled
    wrapper, marker = deaf_kubectl
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    _hold_back(project)
    running: Running = project.start("-v", "deploy", env=_wrapped_env(project, wrapper, private_tmp))
    try:
        running.wait_for_line("▶ wait")
        pid = running.process.pid
        # The watches run: the real kubectl under a wrapper, for each kind watched.
        assert _wait(lambda: len(_marked(marker, wrapper)) >= 2, until=time.monotonic() + 30)
        started_before = _descendants(pid)
        assert any(p in _marked(marker, wrapper) for p, _ in started_before)
        started = time.monotonic()
        running.process.send_signal(signum)
        run = running.finish(timeout=60)
        exited = time.monotonic() - started
        print(
            f"{name}: exit {run.exit_code} {exited:.2f}s after the signal; {len(started_before)} descendants"
        )
        assert run.exit_code == code, run.stderr
        assert run.json()["error"]["code"] == name
        assert exited <= SIGNAL_EXIT_S, f"exited {exited:.1f}s after the signal"
        # Nothing it started is left once it has exited (a SIGKILL lands at once; allow the kernel
        # the moment it needs, within the same 5 s).
        left = started + SIGNAL_EXIT_S
        assert _wait(lambda: not _alive(started_before), until=left), _alive(started_before)
        assert _wait(lambda: not _marked(marker, wrapper), until=left), _marked(marker, wrapper)
        assert list(private_tmp.glob("flux-ci-auth-*")) == []  # the private registry login is gone
    finally:
        if running.process.poll() is None:
            running.process.kill()


# --- a registry that stalls ----------------------------------------------------------------------

PAUSE_S = 8.0  # how long the registry stays frozen under the push: the scenario, not a wait


def test_a_push_through_a_paused_then_resumed_registry_succeeds_within_the_deadline(
    project: Project, sandbox: SandboxClient, tmp_path: Path
) -> None:
    # A `flux` shim on PATH (as CI images have them) holds the push back until the registry is
    # frozen, so the real push starts against a registry that accepts connections and answers nothing.
    real = shutil.which("flux", path=sandbox.env["PATH"])
    shims = tmp_path / "shim-bin"
    shims.mkdir()
    started_file, go_file = tmp_path / "push-started", tmp_path / "go"
    shim = shims / "flux"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = push ]; then : > "{started_file}"\n'
        f'  while [ ! -e "{go_file}" ]; do sleep 0.05; done\nfi\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    env = project.env(FLUX_CI_TIMEOUT="90s", PATH=f"{shims}{os.pathsep}{sandbox.env['PATH']}")
    running = project.start("-v", "deploy", env=env)
    try:
        assert _wait(started_file.exists, until=time.monotonic() + 60), "".join(running.seen)
        with sandbox.paused("registry"):
            go_file.touch()
            time.sleep(PAUSE_S)
        run = running.finish(timeout=120)
    finally:
        if running.process.poll() is None:
            running.process.kill()
    print(f"registry paused {PAUSE_S:g}s under the push: exit {run.exit_code} after {run.seconds:.1f}s")
    assert run.exit_code == 0, run.stderr
    assert PAUSE_S <= run.seconds < 90
    assert "timed out" not in run.stderr
    digest = run.json()["artifact"]["digest"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"


# --- the trace is the job's, not the cluster's ---------------------------------------------------


def test_a_verbose_trace_shows_other_teams_objects_only_as_summary_lines(
    project: Project, sandbox: SandboxClient
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    other = unique_name("other-team")
    sandbox.create_namespace(other)
    try:
        theirs = {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "payments", "namespace": other},
            "spec": {
                "interval": "10m",
                "sourceRef": {"kind": "OCIRepository", "name": "payments"},
                "path": "./",
                "prune": True,
                "postBuild": {"substitute": {"DB_PASSWORD": secret}},
            },
        }
        sandbox.apply(json.dumps(theirs))  # kubectl apply: its last-applied annotation holds it too
        run = project.flux_ci("-vv", "deploy")
    finally:
        sandbox.delete_namespace(other)
    lines = len(run.stderr.splitlines())
    print(f"-vv deploy: exit {run.exit_code} after {run.seconds:.1f}s, {lines} stderr lines")
    assert run.exit_code == 0, run.stderr
    assert secret not in run.stderr
    assert secret not in run.stdout
    assert f"Kustomization {other}/payments, generation 1" in run.stderr  # listed: as one line
    assert f"Kustomization {project.namespace}/app, generation" in run.stderr
    assert "last-applied-configuration" not in run.stderr
    assert "+ kubectl get " in run.stderr  # the commands themselves are traced
