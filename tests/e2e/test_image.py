"""The drop-in CI image, built and run for real: the Dockerfile is built with a container engine,
then `flux-ci deploy` runs inside the container against the sandbox the way a GitLab job runs it:
configured by environment variables only, as the image's own user (uid 10001), on the host's
network, in a checkout mounted at /builds/<group>/<project>, with the kubeconfig as a file variable.

No image registry is reachable in CI, so the Python base is made from Debian packages by
.ci/make-test-bases.sh (where mmdebstrap is installed; elsewhere the official base is pulled), and the
`tools` stage is replaced by the flux, oras and kubectl that .ci/build-tools.sh already built
(`--build-context tools=DIR`): nothing is compiled in the image build. Skipped only where no
container engine is installed or none can start a container.

linux/arm64: the same Dockerfile built with `--platform linux/arm64` from the arm64 tools
(`BUILD_TOOLS_ARCH=arm64 .ci/build-tools.sh`) and an arm64 base, its RUN steps and then the image
run under QEMU (qemu-user-static's binfmt_misc entry, which .ci/install-ci-engines.sh registers).
Where a machine cannot register it, that test says so and skips; the arm64 binaries are checked by
their ELF headers everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flux_ci import __version__
from tests.e2e.project import ROOT, Project, Run
from tests.e2e.test_pipelines import require
from tests.sandbox import SandboxClient
from tests.sandbox.versions import pinned_version, read_versions, tool_path, tools_dir

pytestmark = pytest.mark.e2e

TEST_PYTHON_BASE = "localhost/flux-ci-test-base/python:3.11-bookworm"  # .ci/make-test-bases.sh
OFFICIAL_PYTHON_BASE = "python:3.11-slim-bookworm"  # the Dockerfile's default
# This session's own tags (removed at the end): other test sessions on the machine build theirs.
IMAGE = f"localhost/flux-ci-test:{os.getpid()}"
ARM64_IMAGE = f"localhost/flux-ci-test:{os.getpid()}-arm64"
IMAGE_TOOLS = ("flux", "oras", "kubectl", "cosign")
EM_AARCH64 = 183  # ELF e_machine of arm64
# What the release pipeline passes as build arguments: the org.opencontainers.image.* labels.
LABELS = {
    "VERSION": __version__,
    "REVISION": "3" * 40,
    "CREATED": "2026-01-02T03:04:05Z",
    "SOURCE": "https://gitlab.example.com/flux-ci/flux-ci",
}
IMAGE_UID = 10001
# Where GitLab's Docker executor mounts the checkout, and where it writes file variables.
CHECKOUT = "/builds/platform/app"
FILE_VARIABLES = f"{CHECKOUT}.tmp"
COMMIT_SHA = "2222222222222222222222222222222222222222"
# flux 2.9.3 writes its layer file next to FLUX_CI_PATH (`<path><digits>`), so the push fails
# where the checkout is not writable for the job's user. flux-ci must not depend on that.


@dataclass(frozen=True)
class Engine:
    """podman or docker, with the environment its processes get (CONTAINERS_CONF, if needed)."""

    command: str
    env: Mapping[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.command, *args],
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool = True

    def option(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class BuiltImage:
    engine: Engine
    name: str
    base: str
    size_bytes: int


@dataclass
class Job:
    """One GitLab-like job in the image: its checkout, its file variables and its variables."""

    engine: Engine
    image: str
    checkout: Path
    variables: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)

    def run(self, script: Sequence[str], *, timeout: float = 240, **extra: str) -> Run:
        """Run `script` in the image; variables go in as `--env NAME`, their values never in argv."""
        variables = self.variables | extra
        argv = [self.engine.command, "run", "--rm", "--network", "host", "--workdir", CHECKOUT]
        for mount in self.mounts:
            argv += ["--volume", mount.option()]
        for name in variables:
            argv += ["--env", name]
        argv += [self.image, *script]
        started = time.monotonic()
        done = subprocess.run(
            argv,
            env=dict(self.engine.env) | variables,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


# -- the engine and the image (built once per module) ---------------------------------------


def _engine_environment() -> dict[str, str]:
    """The test process's environment without any job or sandbox variable."""
    prefixes = ("FLUX_CI_", "CI_", "GITLAB_", "GITHUB_", "KUBECONFIG", "DOCKER_CONFIG")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


def _find_engine() -> Engine:
    name = os.environ.get("CONTAINER_ENGINE") or next(
        (candidate for candidate in ("podman", "docker") if shutil.which(candidate)), None
    )
    if name is None:
        pytest.skip("no container engine: neither podman nor docker is installed")
    if not shutil.which(name):
        pytest.skip(f"no container engine: CONTAINER_ENGINE={name} is not installed")
    return Engine(name, _engine_environment())


def _python_base(engine: Engine, arch: str = "amd64") -> str:
    """The test base of `arch` (made when missing or stale: the arm64 one under emulation, which
    takes minutes when cold), or the official base where mmdebstrap is absent."""
    if not shutil.which("mmdebstrap"):
        pulled = engine.run("pull", "--platform", f"linux/{arch}", OFFICIAL_PYTHON_BASE, timeout=300)
        assert pulled.returncode == 0, (
            f"no base image: install mmdebstrap to make {TEST_PYTHON_BASE}, or let "
            f"{engine.command} pull {OFFICIAL_PYTHON_BASE}:\n{pulled.stderr}"
        )
        return OFFICIAL_PYTHON_BASE
    made = subprocess.run(
        [str(ROOT / ".ci" / "make-test-bases.sh"), arch],
        env=dict(engine.env) | {"CONTAINER_ENGINE": engine.command},
        capture_output=True,
        text=True,
        timeout=420 if arch == "amd64" else 1800,
        check=False,
    )
    assert made.returncode == 0, f".ci/make-test-bases.sh {arch} failed:\n{made.stderr}"
    return TEST_PYTHON_BASE if arch == "amd64" else f"{TEST_PYTHON_BASE}-{arch}"


def _running_engine(engine: Engine, base: str) -> Engine:
    """The engine as it can start a container here, or skip: as is, else with .ci/containers.conf."""
    candidates = [engine]
    if engine.command == "podman" and "CONTAINERS_CONF" not in engine.env:
        conf = str(ROOT / ".ci" / "containers.conf")
        candidates.append(Engine(engine.command, dict(engine.env) | {"CONTAINERS_CONF": conf}))
    errors = []
    for candidate in candidates:
        probe = candidate.run("run", "--rm", base, "true")
        if probe.returncode == 0:
            return candidate
        errors.append(probe.stderr.strip().splitlines()[-1:] or ["(no message)"])
    pytest.skip(f"{engine.command} cannot start a container here: {errors[-1][0]}")


def arm64_tool(tool: str) -> Path:
    """Where `BUILD_TOOLS_ARCH=arm64 .ci/build-tools.sh` puts a tool: a cache of its own."""
    root = tools_dir()
    return root.with_name(f"{root.name}-linux-arm64") / tool / pinned_version(tool) / tool


def _tools_context(directory: Path, arch: str = "amd64") -> Path:
    """flux, oras, kubectl and cosign as .ci/build-tools.sh built them, as real files (no symlinks)."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in IMAGE_TOOLS:
        source = (tool_path(tool) if arch == "amd64" else arm64_tool(tool)).resolve()
        assert source.is_file(), f"{tool} is not built: run .ci/build-tools.sh"
        target = directory / tool
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return directory


def _build(
    engine: Engine, name: str, base: str, tools: Path, *extra: str, timeout: float = 480
) -> BuiltImage:
    labels = [arg for key, value in LABELS.items() for arg in ("--build-arg", f"{key}={value}")]
    started = time.monotonic()
    built = engine.run(
        "build", "--tag", name, "--file", str(ROOT / "Dockerfile"), *extra, *labels,
        "--build-arg", f"PYTHON_IMAGE={base}", "--build-context", f"tools={tools}", str(ROOT),
        timeout=timeout,
    )  # fmt: skip
    assert built.returncode == 0, f"{engine.command} build failed:\n{built.stderr[-4000:]}"
    size = int(engine.run("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())
    print(f"{name}: {size / 2**20:.0f} MiB, built in {time.monotonic() - started:.0f}s")
    return BuiltImage(engine, name, base, size)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    found = _find_engine()
    base = _python_base(found)
    engine = _running_engine(found, base)
    tools = _tools_context(tmp_path_factory.mktemp("image-tools"))
    built = _build(engine, IMAGE, base, tools)
    yield built
    engine.run("rmi", "--force", IMAGE)


# -- a GitLab job in the image ----------------------------------------------------------------


def _file_variables(sandbox: SandboxClient, directory: Path) -> tuple[Mount, str]:
    """KUBECONFIG as GitLab writes a file variable, readable by the image's user only.

    The server stays https://127.0.0.1:<port> (the container shares the host's network); the CA
    file it names is copied next to it and the path rewritten to where the mount puts it.
    """
    directory.mkdir(mode=0o755)
    config = json.loads(sandbox.kubeconfig.read_text(encoding="utf-8"))
    for index, cluster in enumerate(config["clusters"]):  # one CA file per cluster (two may run)
        assert cluster["cluster"]["server"].startswith("https://127.0.0.1:")
        ca, name = Path(cluster["cluster"]["certificate-authority"]), f"sandbox-ca-{index}.crt"
        shutil.copyfile(ca, directory / name)
        (directory / name).chmod(0o644)
        cluster["cluster"]["certificate-authority"] = f"{FILE_VARIABLES}/{name}"
    kubeconfig = directory / "KUBECONFIG"
    kubeconfig.write_text(json.dumps(config), encoding="utf-8")
    try:
        os.chown(kubeconfig, IMAGE_UID, IMAGE_UID)
        kubeconfig.chmod(0o600)
    except PermissionError:  # not root: the file is in a private temp dir anyway
        kubeconfig.chmod(0o644)
    return Mount(directory, FILE_VARIABLES), f"{FILE_VARIABLES}/KUBECONFIG"


def _gitlab_job(project: Project, image: BuiltImage, tmp_path: Path, *, writable_checkout: bool) -> Job:
    """GitLab's predefined variables plus the few FLUX_CI_ ones this cluster needs.

    The checkout is writable for the job's user, as GitLab's runner makes it (umask 0000), unless
    `writable_checkout` is False (root-owned and 0755, as with FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR).
    The manifests are mounted read-only into it: flux-ci must never write there.
    """
    sandbox = project.sandbox
    checkout = tmp_path / "checkout"
    (checkout / "manifests").mkdir(parents=True)
    checkout.chmod(0o777 if writable_checkout else 0o755)
    file_mount, kubeconfig = _file_variables(sandbox, tmp_path / "file-variables")
    variables = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_PROJECT_DIR": CHECKOUT,
        "CI_PROJECT_URL": "https://gitlab.example.com/platform/app",
        "CI_COMMIT_SHA": COMMIT_SHA,
        "CI_COMMIT_SHORT_SHA": COMMIT_SHA[:8],
        "CI_COMMIT_REF_NAME": "main",
        "KUBECONFIG": kubeconfig,
        # FLUX_CI_PATH stays unset: `manifests` in the checkout, the working directory.
        "FLUX_CI_REPOSITORY": sandbox.oci_url(project.repository),
        "FLUX_CI_INSECURE_REGISTRY": "true",  # the sandbox registry speaks plain HTTP
        "FLUX_CI_NAMESPACE": project.namespace,
        "FLUX_CI_TIMEOUT": "120s",
        "FLUX_CI_OUTPUT": "json",
    }
    if not sandbox.anonymous:
        variables |= {
            "CI_REGISTRY_USER": sandbox.registry_user,
            "CI_REGISTRY_PASSWORD": sandbox.registry_password,
        }
    mounts = [
        Mount(checkout, CHECKOUT, read_only=False),
        Mount(project.manifests, f"{CHECKOUT}/manifests"),
        file_mount,
    ]
    return Job(image.engine, image.name, checkout, variables, mounts)


def _no_password(project: Project, run: Run) -> None:
    password = project.sandbox.registry_password
    assert not password or password not in run.stdout + run.stderr


def _reported(pattern: str, output: str) -> str:
    """The version a tool printed (the pattern's group), or the whole output in the failure."""
    match = re.search(pattern, output, re.MULTILINE)
    assert match, f"{pattern!r} not in:\n{output}"
    return match[1]


# -- the tests ----------------------------------------------------------------------------------


def test_image_holds_the_pinned_tools_runs_as_10001_and_nothing_to_build_with(image: BuiltImage) -> None:
    config = json.loads(
        image.engine.run("image", "inspect", "--format", "{{json .Config}}", image.name).stdout
    )
    assert config["User"] == str(IMAGE_UID)
    assert not config.get("Entrypoint")  # GitLab needs the shell for `script:`
    script = (
        "id -u; flux version --client; oras version; kubectl version --client; flux-ci --version;"
        " for c in go gcc cc make; do command -v $c && echo found $c; done;"
        " for d in /usr/local/go /root/go /go /src /out /tmp/build /opt/flux-ci/bin/pip; do"
        "   [ -e $d ] && echo found $d; done; true"
    )
    done = image.engine.run("run", "--rm", image.name, "bash", "-c", script)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    versions = read_versions()
    assert out.splitlines()[0] == str(IMAGE_UID)
    assert _reported(r"^flux: v?(\S+)$", out) == versions["FLUX_VERSION"]
    assert _reported(r"^Version:\s*(\S+)$", out) == versions["ORAS_VERSION"]
    assert _reported(r"^Client Version: v?(\S+)$", out) == versions["KUBERNETES_VERSION"]
    assert _reported(r"^flux-ci (\S+)$", out) == __version__
    assert "found" not in out, out  # no compiler, Go cache, build leftover or pip in the venv
    labels = config["Labels"]
    assert {key: labels.get(f"org.opencontainers.image.{key.lower()}") for key in LABELS} == LABELS
    assert labels["org.opencontainers.image.title"] == "flux-ci"
    # The official python slim base plus ~150 MB of binaries; a Go toolchain would add ~600 MB.
    assert image.size_bytes < 500 * 2**20, f"{image.size_bytes} bytes, built from {image.base}"


def test_doctor_then_deploy_in_the_image_as_a_gitlab_job(
    project: Project, image: BuiltImage, tmp_path: Path
) -> None:
    job = _gitlab_job(project, image, tmp_path, writable_checkout=True)

    doctor = job.run(["flux-ci", "doctor"])
    assert doctor.exit_code == 0, doctor.stderr
    checks = {check["name"]: check for check in doctor.json()["checks"]}
    assert all(check["ok"] for check in checks.values()), checks
    assert checks["flux installed"]["detail"] == read_versions()["FLUX_VERSION"]

    deploy = job.run(["flux-ci", "deploy"], FLUX_CI_DOTENV="deploy.env")
    assert deploy.exit_code == 0, deploy.stderr
    report = deploy.json()
    digest = report["artifact"]["digest"]
    assert report["status"] == "succeeded"
    assert report["artifact"]["tags"] == [COMMIT_SHA[:8], "latest"]
    assert report["artifact"]["revision"] == f"main@sha1:{COMMIT_SHA}"
    assert digest == project.resolve(COMMIT_SHA[:8]) == project.resolve("latest")
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"
    assert project.source()["status"]["artifact"]["revision"] == f"latest@{digest}"
    assert project.configmap_greeting() == "hello"
    dotenv = (job.checkout / "deploy.env").read_text().splitlines()  # written by uid 10001
    assert f"FLUX_CI_DIGEST={digest}" in dotenv
    assert "FLUX_CI_STATUS=succeeded" in dotenv
    _no_password(project, doctor)
    _no_password(project, deploy)


def test_failing_deploy_in_the_image_exits_with_its_code(
    project: Project, image: BuiltImage, tmp_path: Path
) -> None:
    job = _gitlab_job(project, image, tmp_path, writable_checkout=True)
    run = job.run(["flux-ci", "deploy"], CI_REGISTRY_PASSWORD="not-the-password")
    assert run.exit_code == 4, run.stderr  # registry refused: what the job's exit code shows
    assert "unauthorized" in run.json()["error"]["message"]
    assert not project.pushed(COMMIT_SHA[:8])
    assert "not-the-password" not in run.stdout + run.stderr
    _no_password(project, run)


def test_deploy_in_the_image_from_a_read_only_checkout(
    project: Project, image: BuiltImage, tmp_path: Path
) -> None:
    job = _gitlab_job(project, image, tmp_path, writable_checkout=False)
    run = job.run(["flux-ci", "deploy"])
    # flux writes its layer next to --path: flux-ci pushes a private copy, so this must succeed.
    assert "error creating layer" not in run.stderr
    assert run.exit_code == 0, run.stderr
    digest = run.json()["artifact"]["digest"]
    assert project.kustomization()["status"]["lastAppliedRevision"] == f"latest@{digest}"


# -- linux/arm64 ----------------------------------------------------------------------------------


def elf_header(path: Path) -> tuple[int, bool]:
    """(e_machine, has an interpreter) of a 64-bit little-endian ELF file: a static binary has no
    PT_INTERP program header, so it runs on any Linux of its architecture."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert (data[4], data[5]) == (2, 1), f"{path} is not 64-bit little-endian"
    (machine,) = struct.unpack_from("<H", data, 18)
    (phoff,) = struct.unpack_from("<Q", data, 32)
    entry_size, count = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, phoff + index * entry_size)[0] for index in range(count)]
    return machine, 3 in types  # PT_INTERP


def _arm64_tools() -> dict[str, Path]:
    tools = {tool: arm64_tool(tool) for tool in IMAGE_TOOLS}
    missing = [str(path) for path in tools.values() if not path.exists()]
    require(not missing, f"the arm64 tools ({', '.join(missing)}: BUILD_TOOLS_ARCH=arm64 .ci/build-tools.sh)")
    return tools


def arm64_emulation() -> str | None:
    """Why an arm64 binary cannot run here, or None when it can (binfmt_misc with qemu-aarch64)."""
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        return "qemu-aarch64 is not registered in binfmt_misc (qemu-user-static, binfmt-support)"
    oras = arm64_tool("oras")
    done = subprocess.run([str(oras), "version"], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        return f"the arm64 oras does not run under emulation: {done.stderr.strip()[-300:]}"
    return None


def test_arm64_tools_are_static_aarch64_binaries_of_the_pinned_versions() -> None:
    """Checked everywhere, emulation or not: the cross-compiled tools are arm64 ELF binaries."""
    for tool, path in _arm64_tools().items():
        machine, interpreted = elf_header(path)
        assert machine == EM_AARCH64, f"{tool}: e_machine {machine}"
        assert not interpreted, f"{tool} needs a dynamic loader"
        assert path.parent.name == pinned_version(tool)
    if arm64_emulation() is None:
        out = subprocess.run(
            [str(arm64_tool("flux")), "version", "--client"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert _reported(r"^flux: v?(\S+)$", out) == read_versions()["FLUX_VERSION"]


@pytest.fixture(scope="module")
def arm64_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    tools = _arm64_tools()
    reason = arm64_emulation()
    if reason:
        pytest.skip(f"the arm64 image cannot be built or run here: {reason}; the arm64 binaries are "
                    "checked by their ELF headers instead")  # fmt: skip
    found = _find_engine()
    engine = _running_engine(found, _python_base(found))
    base = _python_base(found, "arm64")
    context = _tools_context(tmp_path_factory.mktemp("image-tools-arm64"), arch="arm64")
    assert {path.name for path in context.iterdir()} == set(tools)
    built = _build(engine, ARM64_IMAGE, base, context, "--platform", "linux/arm64", timeout=1500)
    yield built
    engine.run("rmi", "--force", ARM64_IMAGE)


def test_arm64_image_runs_under_emulation(arm64_image: BuiltImage) -> None:
    image = arm64_image
    architecture = image.engine.run("image", "inspect", "--format", "{{.Architecture}}", image.name)
    assert architecture.stdout.strip() == "arm64"
    script = (
        "uname -m; id -u; flux-ci --version; flux version --client; oras version; kubectl version --client"
    )
    done = image.engine.run("run", "--rm", image.name, "bash", "-c", script, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["aarch64", str(IMAGE_UID)]
    versions = read_versions()
    assert _reported(r"^flux-ci (\S+)$", done.stdout) == __version__
    assert _reported(r"^flux: v?(\S+)$", done.stdout) == versions["FLUX_VERSION"]
    assert _reported(r"^Version:\s*(\S+)$", done.stdout) == versions["ORAS_VERSION"]
    assert _reported(r"^Client Version: v?(\S+)$", done.stdout) == versions["KUBERNETES_VERSION"]
