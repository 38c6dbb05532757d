#!/usr/bin/env bash
# Build the real Kubernetes pieces the e2e tests run against -- kube-apiserver,
# etcd, helm, kwok -- from Go modules with the ordinary `go` client, and cache
# the binaries per version. No Docker, no release tarballs: only the Go module
# proxy is reachable from CI/dev machines.
#
# usage:
#   e2e/cluster/build-tools.sh             build what is missing; the LAST stdout
#                                          line is OCTO_K8S_BIN=<dir>
#   e2e/cluster/build-tools.sh --print-bin print <dir> and exit 0 if everything is
#                                          already built, else exit 1 (never builds,
#                                          never touches the network, needs no go)
#   e2e/cluster/build-tools.sh --rebuild   rebuild all four even if cached
#   ... --node                             any of the above for the whole node too:
#                                          also kubelet, kube-controller-manager,
#                                          kube-scheduler, kube-proxy, coredns, pause
#
# <dir> holds kube-apiserver, etcd, helm, kwok (and with --node the six more;
# symlinks into per-tool cache dirs) and versions.env. Progress and timings go to stderr; stdout carries only
# the OCTO_K8S_BIN= line. Cache root: ${OCTO_CACHE:-$HOME/.cache/octo-mesh}/k8s.
# See e2e/cluster/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${HERE}/tools"          # wrapper module for kube-apiserver (update-k8s.sh)
ETCD_MOD="${HERE}/tools/etcd"  # wrapper module for etcd
NODE_MOD="${HERE}/tools/node"  # wrapper module for kubelet, controller-manager, scheduler, kube-proxy
PAUSE_MOD="${HERE}/tools/pause" # the sandbox image's binary (our own ten lines)

# helm and kwok have no replace directives, so `go install pkg@version` works.
HELM_VERSION="v3.22.0"
KWOK_VERSION="v0.8.0"
# CoreDNS has no replace directives either: `go install` as well.
COREDNS_VERSION="v1.15.0"
# kube-apiserver and etcd versions are whatever the committed wrapper modules pin.
required() { # go.mod module -> version of module in its require lines
  awk -v m="$2" '$1 !~ /^\/\// {for (i = 1; i < NF; i++) if ($i == m) { print $(i+1); exit }}' "$1"
}
K8S_VERSION="$(required "${TOOLS}/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(required "${ETCD_MOD}/go.mod" go.etcd.io/etcd/server/v3)"
[[ "$K8S_VERSION" == v1.* && "$ETCD_VERSION" == v3.* ]] ||
  { echo "build-tools.sh: cannot read versions from the wrapper go.mod files" >&2; exit 1; }

CACHE_ROOT="${OCTO_CACHE:-${HOME}/.cache/octo-mesh}/k8s"

mode=build
node=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) mode=print ;;
    --rebuild) mode=rebuild ;;
    --node) node=1 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-tools.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[build-tools] %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# Build recipes. The cache key of each tool is its version plus a hash of
# everything that determines the binary: the recipe text below and, for the
# wrapper modules, go.mod/go.sum/main.go. Change a flag -> new key -> rebuild.
# The Go toolchain version is deliberately NOT part of the key (an upgrade of
# Go should not force a 15-minute kube-apiserver rebuild).
# ---------------------------------------------------------------------------
GOENV_RECIPE="CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=readonly,-buildvcs=false -trimpath -s -w"

k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags() {
  # Same variables hack/lib/version.sh sets, so `kube-apiserver --version` and
  # GET /version report the real release. buildDate = the tag's publish time
  # from the module proxy (reproducible, unlike `date`).
  local date="$1" v pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for v in "gitVersion=${K8S_VERSION}" "gitMajor=1" "gitMinor=${k8s_minor}" \
             "gitCommit=" "gitTreeState=archive" "buildDate=${date}"; do
      printf -- '-X %s.%s ' "$pkg" "$v"
    done
  done
}
etcd_ldflags() { printf -- '-X go.etcd.io/etcd/api/v3/version.GitSHA=module-%s' "${ETCD_VERSION}"; }
helm_ldflags() {
  # $1/$2 = k8s major/minor of helm's own client-go: the default
  # .Capabilities.KubeVersion for `helm template` (upstream Makefile does this).
  local p=helm.sh/helm/v3
  printf -- '-X %s/internal/version.version=%s -X %s/internal/version.gitTreeState=archive ' "$p" "$HELM_VERSION" "$p"
  printf -- '-X %s/pkg/lint/rules.k8sVersionMajor=%s -X %s/pkg/lint/rules.k8sVersionMinor=%s ' "$p" "$1" "$p" "$2"
  printf -- '-X %s/pkg/chartutil.k8sVersionMajor=%s -X %s/pkg/chartutil.k8sVersionMinor=%s' "$p" "$1" "$p" "$2"
}

coredns_ldflags() { printf -- '-X github.com/coredns/coredns/coremain.GitCommit=module-%s' "${COREDNS_VERSION}"; }

hash8() { sha256sum | cut -c1-8; }
key_for() { # tool -> cache dir name
  case "$1" in
    kube-apiserver) { echo "$GOENV_RECIPE"; declare -f k8s_ldflags; cat "${TOOLS}/go.mod" "${TOOLS}/go.sum"; } | hash8 | sed "s/^/kube-apiserver-${K8S_VERSION}-/" ;;
    etcd) { echo "$GOENV_RECIPE"; declare -f etcd_ldflags; cat "${ETCD_MOD}/go.mod" "${ETCD_MOD}/go.sum" "${ETCD_MOD}/main.go"; } | hash8 | sed "s/^/etcd-${ETCD_VERSION}-/" ;;
    helm) { echo "$GOENV_RECIPE"; declare -f helm_ldflags; } | hash8 | sed "s/^/helm-${HELM_VERSION}-/" ;;
    kwok) { echo "$GOENV_RECIPE"; } | hash8 | sed "s/^/kwok-${KWOK_VERSION}-/" ;;
    # The node binaries come from their own wrapper module, so the four keys above never
    # move when one is added here.
    kubelet|kube-controller-manager|kube-scheduler|kube-proxy)
      { echo "$GOENV_RECIPE"; echo "$1"; declare -f k8s_ldflags; cat "${NODE_MOD}/go.mod" "${NODE_MOD}/go.sum"; } | hash8 | sed "s/^/$1-${K8S_VERSION}-/" ;;
    coredns) { echo "$GOENV_RECIPE"; declare -f coredns_ldflags; } | hash8 | sed "s/^/coredns-${COREDNS_VERSION}-/" ;;
    pause) { echo "$GOENV_RECIPE"; cat "${PAUSE_MOD}/go.mod" "${PAUSE_MOD}/main.go"; } | hash8 | sed "s/^/pause-/" ;;
  esac
}

ALL_TOOLS=(kube-apiserver etcd helm kwok)
declare -A DIR
for t in "${ALL_TOOLS[@]}"; do DIR[$t]="${CACHE_ROOT}/$(key_for "$t")"; done
BIN_DIR="${CACHE_ROOT}/bin-${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}-kwok-${KWOK_VERSION}-$(
  for t in "${ALL_TOOLS[@]}"; do basename "${DIR[$t]}"; done | hash8)"
if [[ "$node" == 1 ]]; then
  ALL_TOOLS+=(kubelet kube-controller-manager kube-scheduler kube-proxy coredns pause)
  for t in "${ALL_TOOLS[@]}"; do DIR[$t]="${CACHE_ROOT}/$(key_for "$t")"; done
  BIN_DIR="${CACHE_ROOT}/node-bin-${K8S_VERSION}-coredns-${COREDNS_VERSION}-$(
    for t in "${ALL_TOOLS[@]}"; do basename "${DIR[$t]}"; done | hash8)"
fi

tool_ok() { [[ -f "${DIR[$1]}/.ok" && -x "${DIR[$1]}/$1" ]]; }
bin_ok() {
  local t
  for t in "${ALL_TOOLS[@]}"; do tool_ok "$t" && [[ -x "${BIN_DIR}/$t" ]] || return 1; done
}

if [[ "$mode" == print ]]; then
  bin_ok && { echo "$BIN_DIR"; exit 0; }
  exit 1
fi

command -v go >/dev/null || { echo "build-tools.sh: 'go' not found on PATH (need Go >= 1.26)" >&2; exit 1; }
# -mod=readonly: build exactly what go.mod/go.sum pin; -buildvcs=false: the
# wrapper modules sit in our git repo and must not stamp its commit.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

mkdir -p "$CACHE_ROOT"
# Two test runs starting at once must not build into the same dirs.
exec 9>"${CACHE_ROOT}/.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { log "waiting for another build-tools.sh (lock ${CACHE_ROOT}/.lock)"; flock 9; }
fi

mod_field() { # module@version field -> e.g. Info / GoMod path from `go mod download -json`
  (cd / && GOFLAGS= go mod download -json "$1") | sed -n "s/^\t\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"
}
info_time() { # module@version -> the tag's publish time, from the proxy's .info file
  sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(mod_field "$1" Info)"
}

# build_<tool> OUTDIR: put the binary at OUTDIR/<tool>
build_kube-apiserver() {
  local date; date="$(info_time "k8s.io/kubernetes@${K8S_VERSION}")" && [[ -n "$date" ]] || return 1
  (cd "$TOOLS" && go build -trimpath -ldflags "-s -w $(k8s_ldflags "$date")" \
      -o "$1/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
}
build_node_binary() { # OUTDIR tool
  local date; date="$(info_time "k8s.io/kubernetes@${K8S_VERSION}")" && [[ -n "$date" ]] || return 1
  (cd "$NODE_MOD" && go build -trimpath -ldflags "-s -w $(k8s_ldflags "$date")" \
      -o "$1/$2" "k8s.io/kubernetes/cmd/$2")
}
build_kubelet() { build_node_binary "$1" kubelet; }
build_kube-controller-manager() { build_node_binary "$1" kube-controller-manager; }
build_kube-scheduler() { build_node_binary "$1" kube-scheduler; }
build_kube-proxy() { build_node_binary "$1" kube-proxy; }
build_coredns() {
  (cd / && GOFLAGS= GOBIN="$1" go install -trimpath -ldflags "-s -w $(coredns_ldflags)" "github.com/coredns/coredns@${COREDNS_VERSION}")
}
build_pause() {
  (cd "$PAUSE_MOD" && go build -trimpath -ldflags "-s -w" -o "$1/pause" .)
}
build_etcd() {
  (cd "$ETCD_MOD" && go build -trimpath -ldflags "-s -w $(etcd_ldflags)" -o "$1/etcd" .)
}
build_helm() {
  local mod cg maj min
  mod="$(mod_field "helm.sh/helm/v3@${HELM_VERSION}" GoMod)" && cg="$(required "$mod" k8s.io/client-go)" &&
    [[ "$cg" == v0.* ]] || return 1   # client-go v0.37.0 -> k8s 1.37
  maj=1; min="${cg#v0.}"; min="${min%%.*}"
  (cd / && GOFLAGS= GOBIN="$1" go install -trimpath -ldflags "-s -w $(helm_ldflags "$maj" "$min")" \
      "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
}
build_kwok() {
  (cd / && GOFLAGS= GOBIN="$1" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}")
}

# The built binary must report the version we asked for, else it is not cached.
version_of() {
  case "$1" in
    kube-apiserver) "$2" --version ;;           # Kubernetes v1.37.2
    etcd) "$2" --version | head -1 ;;           # etcd Version: 3.7.3
    helm) "$2" version --short ;;               # v3.22.0
    kwok) "$2" --version ;;                     # kwok version v0.8.0 ...
    coredns) "$2" -version | head -1 ;;         # CoreDNS-1.15.0
    pause) "$2" --version ;;                    # octo-mesh pause 1
    *) "$2" --version ;;                        # Kubernetes v1.37.2
  esac
}
want_version() {
  case "$1" in
    kube-apiserver) echo "Kubernetes ${K8S_VERSION}" ;;
    etcd) echo "etcd Version: ${ETCD_VERSION#v}" ;;
    helm) echo "${HELM_VERSION}" ;;
    kwok) echo "${KWOK_VERSION#v}" ;;
    coredns) echo "CoreDNS-${COREDNS_VERSION#v}" ;;
    pause) echo "octo-mesh pause" ;;
    *) echo "Kubernetes ${K8S_VERSION}" ;;
  esac
}

total_start=$SECONDS
for t in "${ALL_TOOLS[@]}"; do
  dir="${DIR[$t]}"
  if [[ "$mode" != rebuild ]] && tool_ok "$t"; then
    log "$t: cached ($(version_of "$t" "$dir/$t" 2>&1 | head -1)) in $dir"
    continue
  fi
  log "$t: building -> $dir"
  tmp="${dir}.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  start=$SECONDS
  if ! "build_$t" "$tmp" >&2; then
    rm -rf "$tmp"; log "$t: BUILD FAILED"; exit 1
  fi
  got="$(version_of "$t" "$tmp/$t" 2>&1 | head -1 || true)"
  if [[ "$got" != *"$(want_version "$t")"* ]]; then
    rm -rf "$tmp"; log "$t: built binary reports '$got', expected '$(want_version "$t")'"; exit 1
  fi
  echo "$got" > "$tmp/.ok"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "$t: built in $((SECONDS - start))s: $got ($(du -h "$dir/$t" | cut -f1))"
done

mkdir -p "$BIN_DIR"
for t in "${ALL_TOOLS[@]}"; do ln -sfn "${DIR[$t]}/$t" "${BIN_DIR}/$t"; done
cat > "${BIN_DIR}/versions.env" <<EOF
K8S_VERSION=${K8S_VERSION}
ETCD_VERSION=${ETCD_VERSION}
HELM_VERSION=${HELM_VERSION}
KWOK_VERSION=${KWOK_VERSION}
EOF
if [[ "$node" == 1 ]]; then echo "COREDNS_VERSION=${COREDNS_VERSION}" >> "${BIN_DIR}/versions.env"; fi
log "all tools ready in $((SECONDS - total_start))s"
echo "OCTO_K8S_BIN=${BIN_DIR}"
