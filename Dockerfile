# The drop-in CI image: flux-ci plus the pinned flux, oras, kubectl and cosign (.ci/versions.env),
# running as a non-root user (uid 10001), with a shell and no ENTRYPOINT so it works as a GitLab
# `image:` whose `script:` runs `flux-ci deploy`.
#
#   make image                        (docker or podman, whichever runs here)
#   docker build -t flux-ci .         (podman build works the same)
#
# Build arguments and contexts, all optional:
#   --build-arg GO_IMAGE=...          base of the stage that compiles the tools (official golang)
#   --build-arg PYTHON_IMAGE=...      base of flux-ci and of the image (official python slim)
#   --build-context tools=DIR         DIR holds prebuilt flux, oras, kubectl and cosign (as built by
#                                     .ci/build-tools.sh): it replaces the `tools` stage, so no Go
#                                     toolchain is pulled and nothing is compiled (CI does this).
ARG GO_IMAGE=golang:1.26-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- the CLIs flux-ci drives, built from their Go modules exactly as CI builds them -------------
FROM ${GO_IMAGE} AS tools-source
WORKDIR /src
COPY .ci/versions.env .ci/build-tools.sh .ci/
RUN FLUX_CI_TOOLS_DIR=/tmp/tools FLUX_CI_BUILD_DIR=/tmp/build .ci/build-tools.sh flux oras kubectl cosign \
 && mkdir -p /out \
 && cp /tmp/tools/flux/*/flux /tmp/tools/oras/*/oras /tmp/tools/kubectl/*/kubectl \
       /tmp/tools/cosign/*/cosign /out/

# Only the four binaries leave the Go stage; `--build-context tools=DIR` replaces this stage.
FROM scratch AS tools
COPY --from=tools-source /out/ /

# --- flux-ci itself, installed into a venv without pip ----------------------------------------
FROM ${PYTHON_IMAGE} AS app
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flux_ci ./flux_ci
RUN python -m venv /opt/flux-ci \
 && /opt/flux-ci/bin/python -m pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/flux-ci/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && /opt/flux-ci/bin/flux-ci --version

# --- the image: the Python base, the venv and the four binaries, nothing else ------------------
FROM ${PYTHON_IMAGE}
COPY --from=tools /flux /oras /kubectl /cosign /usr/local/bin/
COPY --from=app /opt/flux-ci /opt/flux-ci
RUN ln -s /opt/flux-ci/bin/flux-ci /usr/local/bin/flux-ci \
 && useradd --uid 10001 --user-group --create-home --shell /bin/bash flux-ci \
 && flux version --client && oras version && kubectl version --client && cosign version \
 && flux-ci --version
USER 10001
WORKDIR /home/flux-ci
# No ENTRYPOINT: GitLab runs the job's `script:` in the image's shell.
CMD ["flux-ci", "--help"]
