#!/usr/bin/env bash
# Make the base images the image test builds the Dockerfile against, from Debian packages: no
# image registry is needed (CI reaches none). They are for tests only, named as such, and never
# pushed; users build against the official images the Dockerfile names by default.
#
#   .ci/make-test-bases.sh [ARCH...]  (default: amd64, and arm64 where it can run here; skips a base
#                                     that exists and was made by this recipe)
#
#   localhost/flux-ci-test-base/python:3.11-bookworm
#       Debian bookworm minbase + python3 (3.11) with venv and pip, `python`, CA certificates.
#       The stand-in for python:3.11-slim-bookworm (the app stage and the final image).
#   localhost/flux-ci-test-base/python:3.11-bookworm-arm64
#       The same for linux/arm64, made under emulation (mmdebstrap runs the arm64 maintainer scripts
#       through qemu-aarch64's binfmt_misc entry); only where that entry is enabled.
#
# No Go base is made: the image test passes the flux, oras and kubectl that .ci/build-tools.sh
# already built on the host (`--build-context tools=DIR`), so the Go stage never runs.
#
# The packages come from the Debian archives the host's apt uses. The host's extra CA
# certificates (/usr/local/share/ca-certificates) go into the base: a build's HTTPS (pip) takes
# the same way out as the host's. The engine is $CONTAINER_ENGINE, else podman, else docker.
set -euo pipefail

PYTHON_BASE=localhost/flux-ci-test-base/python:3.11-bookworm
RECIPE_LABEL=flux-ci.test-base.recipe
host_arch=$(dpkg --print-architecture)
arm64_runs() { [[ $host_arch == arm64 ]] || grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; }
arches=("$@")
if ((${#arches[@]} == 0)); then
  arches=("$host_arch")
  [[ $host_arch == arm64 ]] || ! arm64_runs || arches+=(arm64)
fi
base_name() { # arch
  if [[ $1 == "$host_arch" ]]; then echo "$PYTHON_BASE"; else echo "$PYTHON_BASE-$1"; fi
}

engine=${CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
  if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v mmdebstrap >/dev/null || {
  echo "make-test-bases: mmdebstrap is missing (apt-get install mmdebstrap)" >&2
  exit 3
}

# The suite and the Debian archives the host's apt already uses (one `deb URI SUITE COMPONENT`
# line each), so the bases are made from the same mirror, with no address written here.
# shellcheck source=/dev/null
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
# shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
mapfile -t sources < <(apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' \
  'Identifier: Packages' 'Origin: Debian' | sort -u)
if ((${#sources[@]} == 0)); then
  echo "make-test-bases: apt knows no Debian archive: run apt-get update first" >&2
  exit 3
fi

extra_cas=()
for ca in /usr/local/share/ca-certificates/*.crt; do
  [[ -e $ca ]] && extra_cas+=("$ca")
done

# A base is made again when the recipe changes: this script, the archives, the extra CAs.
recipe=$( (cat "${BASH_SOURCE[0]}" && printf '%s\n' "$suite" "${sources[@]}" && cat "${extra_cas[@]}" /dev/null) |
  sha256sum | cut -c1-16)

made_by_this_recipe() { # image
  local found
  found=$("$engine" image inspect --format "{{ index .Config.Labels \"$RECIPE_LABEL\" }}" "$1" 2>/dev/null) ||
    return 1
  [[ $found == "$recipe" ]]
}

# mmdebstrap runs each hook with "$1" set to the new root: single quotes are meant.
# shellcheck disable=SC2016
make_python_base() { # arch name
  local hooks=()
  if ((${#extra_cas[@]})); then
    hooks+=(--customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"')
    for ca in "${extra_cas[@]}"; do
      hooks+=(--customize-hook="copy-in $ca /usr/local/share/ca-certificates")
    done
    hooks+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1')
  fi
  # The name promises Python 3.11 (bookworm's python3): checked in the new root, no container run.
  hooks+=(--customize-hook='chroot "$1" python3 -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"')
  # Like the official slim images: no documentation, manual pages or translations (copyright
  # files stay). mmdebstrap removes the apt lists and caches itself.
  # Into a file first: a failed mmdebstrap must not leave an empty image under the base's name.
  local tarball
  tarball=$(mktemp --suffix=.tar)
  # shellcheck disable=SC2064 # the file's name now, not at exit
  trap "rm -f '$tarball'" RETURN
  mmdebstrap --quiet --variant=minbase --architectures="$1" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    "${hooks[@]}" \
    "$suite" "$tarball" "${sources[@]}"
  "$engine" import --quiet --os linux --arch "$1" \
    --change "LABEL $RECIPE_LABEL=$recipe" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$2" >/dev/null
}

for arch in "${arches[@]}"; do
  name=$(base_name "$arch")
  start=$SECONDS
  if made_by_this_recipe "$name"; then
    echo "make-test-bases: $name cached" >&2
  else
    echo "make-test-bases: making $name with mmdebstrap ($suite/$arch, ${#extra_cas[@]} extra CA) ..." >&2
    make_python_base "$arch" "$name"
    echo "make-test-bases: $name made in $((SECONDS - start))s" >&2
  fi
done
