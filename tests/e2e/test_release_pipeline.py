"""flux-ci's own release pipeline (the root .gitlab-ci.yml), run by a real GitLab CI engine.

gitlab-ci-local (pinned in .ci/install-ci-engines.sh) runs the image jobs with its shell executor,
in a throwaway Git copy of this repository, against the sandbox registry: `build-image: [amd64]`
(buildah builds the Dockerfile, pushes `<short sha>-amd64`), `image-index` (the multi-platform index
at `<short sha>`, its digest in the dotenv report), `sbom` (syft's CycloneDX SBOM of the pushed
image) and `sign-image` (cosign signs the index and the image and attests the SBOM). The index is
then pulled back with podman and run, and the signature and the attestation verified with cosign.
`lint` and `test` are this test suite itself, so they are not run again here.

What differs from GitLab, and why: the pipeline runs linux/amd64 only (IMAGE_ARCHES=amd64): the
arm64 image is built and run under emulation by tests/e2e/test_image.py, from the same Dockerfile,
and building it twice would double the slowest step. cosign signs with a key pair
(COSIGN_FLAGS=--key env://COSIGN_PRIVATE_KEY --tlog-upload=false), because keyless signing needs
Sigstore's Fulcio and Rekor, which CI cannot reach; test_pipelines.py checks that the GitLab job
has the sigstore ID token and no key. `package` is test_packaging.py's build; `publish-pypi` (PyPI
trusted publishing) cannot be run without PyPI.

No image registry is reachable in CI: the job gets the locally made Python base and the host-built
flux, oras and kubectl through its IMAGE_BUILD_FLAGS variable (empty on GitLab), and buildah uses
podman's storage driver so it finds that base in the shared image store.

On a version tag the engine plans the `release` job; it is not run: `release:` creates a GitLab
release through the GitLab API (glab), which exists only on a GitLab instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from flux_ci import __version__
from tests.e2e.project import ROOT
from tests.e2e.test_image import (
    IMAGE_UID,
    Engine,
    _find_engine,
    _python_base,
    _running_engine,
    _tools_context,
)
from tests.e2e.test_pipelines import engine_pin, gitlab_ci_local, require
from tests.sandbox import SandboxClient
from tests.sandbox.versions import tool_path, tools_dir

pytestmark = pytest.mark.e2e

IMAGE_JOBS = ("build-image: [amd64]", "image-index", "sbom", "sign-image")
PREDEFINED = "CI_REGISTRY,CI_REGISTRY_IMAGE,CI_REGISTRY_USER,CI_REGISTRY_PASSWORD"
ENGINE_STATE = ".gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n"  # its state, the secrets


@dataclass(frozen=True)
class ReleaseRepository:
    """A Git copy of this repository (what is tracked or not ignored), as the GitLab project."""

    root: Path
    state: Path
    tmp: Path  # TMPDIR of the engine and its jobs

    @classmethod
    def create(cls, tmp_path: Path) -> ReleaseRepository:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        root = tmp_path / "flux-ci"
        for name in filter(None, listed.stdout.split("\0")):
            source = ROOT / name
            if source.is_file():  # a file deleted in the work tree is still listed
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / name)
        with (root / ".gitignore").open("a", encoding="utf-8") as ignore:
            ignore.write(ENGINE_STATE)
        repository = cls(root, tmp_path / "engine", tmp_path / "tmp")
        repository.state.mkdir()
        repository.tmp.mkdir()
        repository.git("init", "--quiet", "--initial-branch=main")
        repository.git("remote", "add", "origin", "https://gitlab.example.com/flux-ci/flux-ci.git")
        repository.git("add", "--all")
        repository.git("commit", "--quiet", "--message=release pipeline test")
        return repository

    def git(self, *args: str) -> str:
        identity = ("-c", "user.name=flux-ci e2e", "-c", "user.email=e2e@example.invalid")
        done = subprocess.run(
            ["git", "-C", str(self.root), *identity, *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def engine(
        self, *args: str, variables: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """gitlab-ci-local with `args`; CI/CD variables go in the project variables file (mode 0600),
        never in argv."""
        variables_file = self.root / ".gitlab-ci-local-variables.yml"
        variables_file.unlink(missing_ok=True)
        variables_file.touch(mode=0o600)
        # Each one typed `variable`: gitlab-ci-local takes an untyped value that starts with / for a
        # File variable and copies the file it names (TOOLS_CONTEXT names a directory).
        variables_file.write_text(
            "".join(
                f"{key}: {json.dumps({'type': 'variable', 'values': {'*': value}})}\n"
                for key, value in variables.items()
            )
        )
        # The jobs' tools, as the images of GitLab's jobs hold them: cosign (the flux-ci image) and syft.
        cosign = tool_path("cosign").parent
        syft = tools_dir() / "syft" / engine_pin("SYFT_VERSION")
        env = {
            "PATH": os.pathsep.join((str(cosign), str(syft), os.environ["PATH"])),
            "HOME": str(self.state),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp),
        }
        argv = [str(gitlab_ci_local()), "--no-color", "--home", str(self.state), *args]
        # Setting GitLab's predefined registry variables is the point here, not a mistake to warn about.
        argv += ["--ignore-predefined-vars", PREDEFINED]
        return subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


def _storage_driver(engine: Engine) -> str:
    """podman's storage driver: buildah, given the same one, sees the images podman stores."""
    info = engine.run("info", "--format", "{{.Store.GraphDriverName}}")
    assert info.returncode == 0, info.stderr
    return info.stdout.strip()


def _cosign(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    argv = [str(tool_path("cosign")), *args]
    return subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_image_jobs_build_index_sbom_and_sign_an_image_that_pulls_back_and_runs(
    sandbox: SandboxClient, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    gitlab_ci_local()  # skips (fails under CI=true) without the engine or rsync
    require(shutil.which("buildah") is not None, "buildah")
    require((tools_dir() / "syft" / engine_pin("SYFT_VERSION") / "syft").exists(), "syft")
    found = _find_engine()
    base = _python_base(found)  # made by .ci/make-test-bases.sh (or the official one, pulled)
    engine = _running_engine(found, base)
    tools = tmp_path_factory.mktemp("release-tools")
    _tools_context(tools / "linux-amd64")
    repository = ReleaseRepository.create(tmp_path)
    image = f"{sandbox.registry}/flux-ci/flux-ci"
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    password = "release-test-key-password"
    cosign_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "COSIGN_PASSWORD": password}
    made = _cosign("generate-key-pair", env=cosign_env, cwd=keys, timeout=60)
    assert made.returncode == 0, made.stderr
    variables = {
        "CI_REGISTRY": sandbox.registry,
        "CI_REGISTRY_IMAGE": image,
        "CI_REGISTRY_USER": sandbox.registry_user,
        "CI_REGISTRY_PASSWORD": sandbox.registry_password,
        "STORAGE_DRIVER": _storage_driver(engine),
        "RELEASE_TLS_VERIFY": "false",  # the sandbox registry speaks plain HTTP
        "SYFT_REGISTRY_INSECURE_USE_HTTP": "true",
        "IMAGE_BUILD_FLAGS": f"--build-arg PYTHON_IMAGE={base}",
        "TOOLS_CONTEXT": str(tools),
        "IMAGE_ARCHES": "amd64",
        "COSIGN_FLAGS": "--key env://COSIGN_PRIVATE_KEY --tlog-upload=false --allow-insecure-registry",
        "COSIGN_PRIVATE_KEY": (keys / "cosign.key").read_text(encoding="utf-8"),
        "COSIGN_PASSWORD": password,
    }

    started = time.monotonic()
    jobs = [arg for job in IMAGE_JOBS for arg in ("--job", job)]
    run = repository.engine(
        "--force-shell-executor", "--shell-isolation", *jobs, variables=variables, timeout=900
    )
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    logs = "".join(
        path.read_text() for path in (repository.root / ".gitlab-ci-local" / "output").glob("*.log")
    )
    assert run.returncode == 0, f"the image jobs failed after {seconds:.0f}s:\n{output[-6000:]}"
    for secret in (sandbox.registry_password, password, variables["COSIGN_PRIVATE_KEY"].splitlines()[1]):
        assert secret not in output + logs

    short_sha = repository.git("rev-parse", "--short=8", "HEAD")  # CI_COMMIT_SHORT_SHA
    report = (repository.root / "image.env").read_text(encoding="utf-8")  # the index job's dotenv
    assert report.startswith("IMAGE_DIGEST=sha256:"), report
    digest = report.strip().removeprefix("IMAGE_DIGEST=")
    amd64 = (repository.root / "image-amd64.env").read_text(encoding="utf-8").strip()
    assert amd64.startswith("IMAGE_DIGEST_amd64=sha256:"), amd64
    assert f"pushed {image}:{short_sha}, pin it as {image}@{digest}" in output
    assert not list(repository.tmp.iterdir())  # the jobs' traps removed their registry logins

    # The SBOM: CycloneDX, naming flux-ci and its locked dependencies, and the Go modules inside.
    sbom = json.loads((repository.root / "sbom-linux-amd64.cdx.json").read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    components = {(item.get("name"), item.get("version")) for item in sbom["components"]}
    assert ("flux-ci", __version__) in components
    assert any(name == "pydantic" for name, _ in components)
    assert any(name == "github.com/fluxcd/flux2/v2" for name, _ in components)
    assert any(name == "python3.11" for name, _ in components)  # a Debian package of the base

    # The signatures and the attestation, verified with the public key.
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir(mode=0o700)
    verify_env = cosign_env | {"DOCKER_CONFIG": str(docker_config)}
    login = subprocess.run(
        [str(tool_path("cosign")), "login", "--username", sandbox.registry_user, "--password-stdin",
         sandbox.registry],
        input=sandbox.registry_password, env=verify_env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    key = ("--key", str(keys / "cosign.pub"), "--insecure-ignore-tlog", "--allow-insecure-registry")
    verified = _cosign("verify", *key, f"{image}@{digest}", env=verify_env)
    assert verified.returncode == 0, verified.stderr
    attested = _cosign(
        "verify-attestation", *key, "--type", "cyclonedx", f"{image}@{amd64.split('=', 1)[1]}", env=verify_env
    )
    assert attested.returncode == 0, attested.stderr

    # Pulled back from the registry (the jobs removed their local copies), logged in with a private file.
    auth_file = tmp_path / "auth" / "auth.json"
    auth_file.parent.mkdir(mode=0o700)
    pull_env = dict(engine.env) | {"REGISTRY_AUTH_FILE": str(auth_file)}
    puller = Engine(engine.command, pull_env)
    login = subprocess.run(
        [engine.command, "login", "--tls-verify=false", "--username", sandbox.registry_user,
         "--password-stdin", sandbox.registry],
        input=sandbox.registry_password, env=pull_env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    reference = f"{image}:{short_sha}"
    try:
        pulled = puller.run("pull", "--tls-verify=false", "--quiet", reference, timeout=300)
        assert pulled.returncode == 0, pulled.stderr
        inspected = puller.run(
            "image", "inspect", "--format", '{{index .Labels "org.opencontainers.image.revision"}}', reference
        )
        assert inspected.stdout.strip() == repository.git("rev-parse", "HEAD")
        version = puller.run(
            "run", "--rm", "--user", str(IMAGE_UID), reference, "sh", "-c", "id -u; flux-ci --version"
        )
        assert version.returncode == 0, version.stderr
        assert version.stdout.split() == [str(IMAGE_UID), "flux-ci", __version__]
    finally:
        puller.run("rmi", "--force", reference)


def test_a_version_tag_plans_the_release_and_a_wrong_tag_stops_the_build(tmp_path: Path) -> None:
    repository = ReleaseRepository.create(tmp_path)
    # Nothing reaches a registry here: the wrong tag stops the job before its login.
    variables = {
        "CI_REGISTRY": "registry.example.invalid",
        "CI_REGISTRY_IMAGE": "registry.example.invalid/flux-ci",
    }

    listed = repository.engine(
        "--list-json", "--variable", f"CI_COMMIT_TAG={__version__}", variables=variables, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    planned = {job["name"]: job["when"] for job in json.loads(listed.stdout)}
    assert set(planned) == {
        "lint",
        "test",
        "package",
        *IMAGE_JOBS,
        "build-image: [arm64]",
        "publish-pypi",
        "release",
    }
    assert set(planned.values()) == {"on_success"}

    # A version tag that is not flux_ci.__version__ fails before anything is built or pushed.
    wrong = "0.0.0" if __version__ != "0.0.0" else "0.0.1"
    run = repository.engine(
        "--force-shell-executor", "--shell-isolation", "--job", IMAGE_JOBS[0],
        "--variable", f"CI_COMMIT_TAG={wrong}", variables=variables, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert f"tag {wrong} is not the version in flux_ci/__init__.py ({__version__})" in run.stdout + run.stderr
