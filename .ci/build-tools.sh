#!/usr/bin/env bash
# Build the real flux, oras, cosign, kubectl, etcd, kube-apiserver, source-controller,
# kustomize-controller, helm-controller and notification-controller (and toxiproxy, for the fault
# tests) from their Go modules into a cache outside the repository.
#
#   .ci/build-tools.sh [TOOL...]      (default: every tool)
#
# Each binary lands in $FLUX_CI_TOOLS_DIR/<tool>/<version>/<tool>; a build is skipped when that
# file exists, or when a binary on PATH already reports the pinned version (it is linked in).
# Nothing upstream is vendored: module copies and wrapper modules live in $FLUX_CI_BUILD_DIR.
#
#   BUILD_TOOLS_ARCH=arm64            cross-compile for linux/arm64 (Go needs no emulator for it)
#                                     into $FLUX_CI_TOOLS_DIR-linux-arm64 (<cache>/tools-linux-arm64:
#                                     an arm64 binary never stands where the sandbox looks for its own)
#                                     (not FLUX_CI_*: flux-ci refuses variables of its prefix it does
#                                     not know, and these may stay exported in a shell)
#   BUILD_TOOLS_JOBS=N                how many tools build side by side (default 2: on 2 cores the
#                                     single-threaded link and module steps of one overlap the
#                                     compile of the other; 1 builds them in turn)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

export CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=${GOTOOLCHAIN:-local}
host_arch=$(go env GOHOSTARCH)
ARCH=${BUILD_TOOLS_ARCH:-$host_arch}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/flux-ci
suffix=""
if [[ $ARCH != "$host_arch" ]]; then
  export GOOS=linux GOARCH=$ARCH
  suffix=-linux-$ARCH
fi
TOOLS_DIR=${FLUX_CI_TOOLS_DIR:-$cache/tools}$suffix
BUILD_DIR=${FLUX_CI_BUILD_DIR:-$cache/build}$suffix
JOBS=${BUILD_TOOLS_JOBS:-2}
mkdir -p "$TOOLS_DIR" "$BUILD_DIR"

all_tools=(oras cosign etcd flux source-controller kustomize-controller helm-controller notification-controller
  kube-apiserver kubectl toxiproxy)

version_of() {
  case $1 in
    flux) echo "$FLUX_VERSION" ;;
    oras) echo "$ORAS_VERSION" ;;
    cosign) echo "$COSIGN_VERSION" ;;
    source-controller) echo "$SOURCE_CONTROLLER_VERSION" ;;
    kustomize-controller) echo "$KUSTOMIZE_CONTROLLER_VERSION" ;;
    helm-controller) echo "$HELM_CONTROLLER_VERSION" ;;
    notification-controller) echo "$NOTIFICATION_CONTROLLER_VERSION" ;;
    kube-apiserver | kubectl) echo "$KUBERNETES_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    toxiproxy) echo "$TOXIPROXY_VERSION" ;;
    *) echo "build-tools: unknown tool '$1' (known: ${all_tools[*]})" >&2; return 2 ;;
  esac
}

# The version a binary on PATH reports, to reuse it when it already matches the pin.
path_version() {
  local bin
  bin=$(command -v "$1" 2>/dev/null) || return 0
  case $1 in
    flux) "$bin" version --client 2>/dev/null | sed -n 's/^flux: v\{0,1\}//p' ;;
    oras) "$bin" version 2>/dev/null | sed -n 's/^Version: *//p' ;;
    cosign) "$bin" version 2>/dev/null | sed -n 's/^GitVersion: *v\{0,1\}//p' ;;
    kubectl) "$bin" version --client 2>/dev/null | sed -n 's/^Client Version: v//p' ;;
    etcd) "$bin" --version 2>/dev/null | sed -n 's/^etcd Version: //p' ;;
    kube-apiserver) "$bin" --version 2>/dev/null | sed -n 's/^Kubernetes v//p' ;;
  esac
}

# One field of `go mod download -json` (tab-indented JSON; no python needed, e.g. in the image build).
mod_field() { # module@version field
  local out
  out=$(GOFLAGS='' go mod download -json "$1") || { echo "$out" >&2; return 1; }
  sed -n "s/^\t\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$out"
}

modcopy() { # module@version destination
  local dir
  dir=$(mod_field "$1" Dir)
  rm -rf "$2"
  cp -r "$dir" "$2"
  chmod -R u+w "$2" # the module cache is read-only
}

k8s_ldflags() {
  local v=$KUBERNETES_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$ldf"
}

go_install() { # outdir package@version
  if [[ -z $suffix ]]; then
    GOBIN="$1" go install -trimpath -ldflags="-s -w" "$2"
    return
  fi
  # go install refuses GOBIN for another platform: it writes $GOPATH/bin/<os>_<arch> instead.
  local gopath
  gopath=$(mktemp -d)
  GOPATH=$gopath GOMODCACHE=$(go env GOMODCACHE) go install -trimpath -ldflags="-s -w" "$2"
  mv "$gopath/bin/linux_$ARCH"/* "$1/"
  rm -rf "$gopath"
}

build_oras() {
  go_install "$1" "oras.land/oras/cmd/oras@v$ORAS_VERSION"
}

build_cosign() {
  go_install "$1" "github.com/sigstore/cosign/v2/cmd/cosign@v$COSIGN_VERSION"
}

build_toxiproxy() {
  # The server command, named for what it is; its version stamped as upstream's release does.
  GOBIN="$1" GOFLAGS="$GOFLAGS -mod=mod" go install -trimpath \
    -ldflags="-s -w -X github.com/Shopify/toxiproxy/v2.Version=$TOXIPROXY_VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@v$TOXIPROXY_VERSION"
  mv "$1/server" "$1/toxiproxy"
}

build_flux() {
  local src=$BUILD_DIR/flux2
  modcopy "github.com/fluxcd/flux2/v2@v$FLUX_VERSION" "$src"
  # The embedded install manifests are git-ignored upstream and bundled from release downloads;
  # a placeholder lets it compile. Only `flux install`/`bootstrap` need them, flux-ci uses neither.
  mkdir -p "$src/cmd/flux/manifests"
  echo '# placeholder: install manifests not bundled' >"$src/cmd/flux/manifests/placeholder.yaml"
  (cd "$src" && go build -trimpath -ldflags "-s -w -X main.VERSION=$FLUX_VERSION" -o "$1/flux" ./cmd/flux)
}

build_controller() { # name outdir version
  local src=$BUILD_DIR/$1
  modcopy "github.com/fluxcd/$1@v$3" "$src"
  # ./api is its own module and is left out of the module zip: use the published one (same commit).
  (cd "$src" && go mod edit -dropreplace="github.com/fluxcd/$1/api" &&
    go mod download "github.com/fluxcd/$1/api" &&
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$2/$1" .)
  # Keep the CRDs next to the binary: the sandbox applies them.
  rm -rf "$2/crds" && cp -r "$src/config/crd/bases" "$2/crds"
}

build_etcd() {
  local src=$BUILD_DIR/etcd-wrap
  rm -rf "$src" && mkdir -p "$src"
  cat >"$src/main.go" <<'GO'
// Command etcd runs go.etcd.io/etcd/server/v3/etcdmain, as upstream server/main.go does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$src" && go mod init flux-ci-tools/etcd >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" &&
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$1/etcd" .)
}

# A wrapper module needs every staging module that k8s.io/kubernetes requires at v0.0.0 mapped
# to its published version: a dependency's own replaces are ignored.
k8s_wrapper() { # dir module-name
  local src=$1 kmod m staging
  staging=0.$(echo "$KUBERNETES_VERSION" | cut -d. -f2-)
  rm -rf "$src" && mkdir -p "$src"
  kmod=$(mod_field "k8s.io/kubernetes@v$KUBERNETES_VERSION" GoMod)
  # shellcheck disable=SC2013 # module paths hold no spaces: one word is one line
  (cd "$src" && go mod init "$2" >/dev/null 2>&1 &&
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$kmod"); do
      go mod edit -replace="$m=$m@v$staging"
    done)
}

build_kube_apiserver() {
  local src=$BUILD_DIR/kube-apiserver-wrap
  k8s_wrapper "$src" flux-ci-tools/kube-apiserver
  cat >"$src/main.go" <<'GO'
// Command kube-apiserver mirrors upstream cmd/kube-apiserver/apiserver.go.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  (cd "$src" && go get "k8s.io/kubernetes@v$KUBERNETES_VERSION" &&
    go build -mod=mod -trimpath -ldflags "$(k8s_ldflags)" -o "$1/kube-apiserver" .)
}

build_kubectl() {
  local src=$BUILD_DIR/kubectl-wrap staging
  staging=0.$(echo "$KUBERNETES_VERSION" | cut -d. -f2-)
  rm -rf "$src" && mkdir -p "$src"
  cat >"$src/main.go" <<'GO'
// Command kubectl mirrors upstream cmd/kubectl/kubectl.go.
package main

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
GO
  (cd "$src" && go mod init flux-ci-tools/kubectl >/dev/null 2>&1 &&
    go get "k8s.io/kubectl@v$staging" "k8s.io/client-go@v$staging" "k8s.io/component-base@v$staging" &&
    go build -mod=mod -trimpath -ldflags "$(k8s_ldflags)" -o "$1/kubectl" .)
}

build_one() {
  local tool=$1 version out start found
  version=$(version_of "$tool")
  out=$TOOLS_DIR/$tool/$version
  if [[ -x $out/$tool ]]; then
    echo "build-tools: $tool $version cached ($out/$tool)" >&2
    return 0
  fi
  found=""
  [[ -n $suffix ]] || found=$(path_version "$tool") # a binary on PATH is the host's
  if [[ $found == "$version" && $tool != *-controller ]]; then
    mkdir -p "$out" && ln -sf "$(command -v "$tool")" "$out/$tool"
    echo "build-tools: $tool $version found on PATH ($(command -v "$tool"))" >&2
    return 0
  fi
  echo "build-tools: $tool $version building for linux/$ARCH (a cold build takes minutes) ..." >&2
  start=$SECONDS
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  case $tool in
    oras) build_oras "$out.tmp" ;;
    cosign) build_cosign "$out.tmp" ;;
    flux) build_flux "$out.tmp" ;;
    etcd) build_etcd "$out.tmp" ;;
    kube-apiserver) build_kube_apiserver "$out.tmp" ;;
    kubectl) build_kubectl "$out.tmp" ;;
    toxiproxy) build_toxiproxy "$out.tmp" ;;
    *-controller) build_controller "$tool" "$out.tmp" "$version" ;;
  esac
  rm -rf "$out" && mv "$out.tmp" "$out" # appears only when complete
  echo "build-tools: $tool $version built in $((SECONDS - start))s" >&2
}

# Builds run side by side, at most $JOBS at once, each tool's output prefixed with its name; the
# first failure fails the script (after the builds already running end).
build_all() {
  local t pid failed=0
  local -A running=()
  for t in "$@"; do
    while ((${#running[@]} >= JOBS)); do
      wait -n -p pid || failed=1
      unset "running[$pid]"
    done
    build_one "$t" 2>&1 | sed -u "s/^/[$t] /" >&2 &
    running[$!]=$t
  done
  while ((${#running[@]})); do
    wait -n -p pid || failed=1
    unset "running[$pid]"
  done
  return "$failed"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=("${all_tools[@]}")
for t in "${tools[@]}"; do version_of "$t" >/dev/null; done
total=$SECONDS
if ((JOBS > 1 && ${#tools[@]} > 1)); then
  build_all "${tools[@]}"
else
  for t in "${tools[@]}"; do build_one "$t"; done
fi
echo "build-tools: ${#tools[@]} tool(s) for linux/$ARCH ready in $((SECONDS - total))s under $TOOLS_DIR" >&2
