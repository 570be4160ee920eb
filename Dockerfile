# The drop-in CI image: flux-ci plus the pinned flux, oras and kubectl (from .ci/versions.env),
# running as a non-root user, with a shell so it works as a GitLab `image:`.
#   docker build -t flux-ci .        (or: make image)

# --- the CLIs flux-ci drives, built from their Go modules exactly as CI builds them -------------
FROM golang:1.26-bookworm AS tools
WORKDIR /src
COPY .ci/versions.env .ci/build-tools.sh .ci/
RUN FLUX_CI_TOOLS_DIR=/tools FLUX_CI_BUILD_DIR=/tmp/build .ci/build-tools.sh flux oras kubectl \
 && mkdir -p /out \
 && cp /tools/flux/*/flux /tools/oras/*/oras /tools/kubectl/*/kubectl /out/

# --- flux-ci itself, built into a venv ------------------------------------------------------
FROM python:3.11-slim-bookworm AS app
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flux_ci ./flux_ci
RUN python -m venv /opt/flux-ci \
 && /opt/flux-ci/bin/pip install --no-cache-dir . \
 && /opt/flux-ci/bin/flux-ci --help >/dev/null

# --- the image ------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
COPY --from=tools /out/ /usr/local/bin/
COPY --from=app /opt/flux-ci /opt/flux-ci
RUN ln -s /opt/flux-ci/bin/flux-ci /usr/local/bin/flux-ci \
 && useradd --uid 10001 --create-home --shell /bin/bash flux-ci \
 && flux version --client && oras version && kubectl version --client && flux-ci --version
USER 10001
WORKDIR /home/flux-ci
# No ENTRYPOINT: GitLab runs the job's `script:` in the image's shell.
CMD ["flux-ci", "--help"]
