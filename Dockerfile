# The drop-in CI image: flux-ci plus the pinned flux, oras, kubectl and cosign (.ci/versions.env),
# running as a non-root user (uid 10001), with a shell and no ENTRYPOINT so it works as a GitLab
# `image:` whose `script:` runs `flux-ci deploy`. For linux/amd64 and linux/arm64.
#
#   make image                        (docker or podman, whichever runs here)
#   docker build -t flux-ci .         (podman build works the same)
#   docker buildx build --platform linux/amd64,linux/arm64 -t flux-ci .
#
# Python packages come from requirements.lock with their hashes (`pip install --require-hashes`),
# flux-ci itself is built with the backend pinned in requirements-build.lock: two builds of one
# commit install the same files. The Go tools are cross-compiled for the target platform on the
# build machine (no emulation); only the RUN steps of the app and final stages run on the target
# platform (emulated with QEMU when it is not the build machine's).
#
# Build arguments and contexts, all optional:
#   --build-arg GO_IMAGE=...          base of the stage that compiles the tools (official golang)
#   --build-arg PYTHON_IMAGE=...      base of flux-ci and of the image (official python slim)
#   --build-arg VERSION=... REVISION=... CREATED=... SOURCE=...
#                                     the org.opencontainers.image.* labels: flux-ci's version, the
#                                     commit, the build time (RFC 3339) and the project's URL
#   --build-context tools=DIR         DIR holds prebuilt flux, oras, kubectl and cosign for the
#                                     target platform (as built by .ci/build-tools.sh): it replaces
#                                     the `tools` stage, so no Go toolchain is pulled and nothing
#                                     is compiled (CI does this).
ARG GO_IMAGE=golang:1.26-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- the CLIs flux-ci drives, built from their Go modules exactly as CI builds them -------------
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS tools-source
ARG TARGETARCH
WORKDIR /src
COPY .ci/versions.env .ci/build-tools.sh .ci/
# BUILD_TOOLS_ARCH: the target's architecture; .ci/build-tools.sh cross-compiles when it is not
# the build machine's, into /tmp/tools-linux-<arch>.
RUN BUILD_TOOLS_ARCH=${TARGETARCH} FLUX_CI_TOOLS_DIR=/tmp/tools FLUX_CI_BUILD_DIR=/tmp/build \
    .ci/build-tools.sh flux oras kubectl cosign \
 && mkdir -p /out \
 && cp /tmp/tools*/flux/*/flux /tmp/tools*/oras/*/oras /tmp/tools*/kubectl/*/kubectl \
       /tmp/tools*/cosign/*/cosign /out/

# Only the four binaries leave the Go stage; `--build-context tools=DIR` replaces this stage.
FROM scratch AS tools
COPY --from=tools-source /out/ /

# --- flux-ci itself: its dependencies from the hashed lock, into a venv without pip ------------
FROM ${PYTHON_IMAGE} AS app
WORKDIR /src
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY flux_ci ./flux_ci
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/build \
 && /opt/build/bin/python -m pip install --quiet --require-hashes -r requirements-build.lock \
 && /opt/build/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python -m venv /opt/flux-ci \
 && /opt/flux-ci/bin/python -m pip install --quiet --require-hashes -r requirements.lock \
 && /opt/flux-ci/bin/python -m pip install --quiet --no-index /wheels/flux_ci-*.whl \
 && /opt/flux-ci/bin/python -m pip check \
 && /opt/flux-ci/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && /opt/flux-ci/bin/flux-ci --version

# --- the image: the Python base, the venv and the four binaries, nothing else ------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=https://gitlab.com/flux-ci/flux-ci
LABEL org.opencontainers.image.title=flux-ci \
      org.opencontainers.image.description="Push manifests as an OCI artifact and wait until Flux has applied exactly that artifact." \
      org.opencontainers.image.licenses=Apache-2.0 \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.created=${CREATED} \
      org.opencontainers.image.source=${SOURCE}
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
