#!/usr/bin/env bash
# Build the Kubernetes test control plane from Go modules: kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd, kwok, the KServe manager and controller-gen, plus the KServe, Gateway API and Prometheus Operator CRDs
# generated from their Go types. There is no registry that ships kube-apiserver, and no Docker here, so the tier in
# tests/cluster runs binaries built from the upstream modules the Go module proxy serves.
#
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/fraud-platform/k8s/<hash of versions.env>/{bin,crds,kwok}, outside the
# repository. A piece already present is not rebuilt, so a second run takes seconds. Two kinds of keys:
#   - versions.env (the control plane set: Kubernetes, etcd, kwok, KServe, controller-gen, Gateway API) names the
#     directory, so changing a line there builds a fresh set and leaves the old one alone;
#   - piece-versions.env (pieces added since, such as the Prometheus Operator CRDs): each piece writes a stamp of its
#     own versions into its output directory and is regenerated only when that stamp differs, so adding or bumping
#     such a piece never invalidates the set already built.
# Each piece is built in its own small wrapper module under .../src and moved into place only when complete, so an
# interrupted build never leaves a half-written binary behind.
#
# Usage: hack/k8s/build.sh            build what is missing, printing progress and the time each piece took
#        hack/k8s/build.sh --print-dir print the cache directory for these versions (builds nothing)
#        hack/k8s/build.sh --check     exit 0 when everything is built, 1 otherwise (builds nothing)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_FILE="$HERE/versions.env"
PIECES_FILE="$HERE/piece-versions.env"
# shellcheck source=versions.env
source "$VERSIONS_FILE"
# shellcheck source=piece-versions.env
source "$PIECES_FILE"

KEY="$(sha256sum "$VERSIONS_FILE" | cut -c1-16)"
ROOT="${FRAUD_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fraud-platform/k8s}/$KEY"
BIN="$ROOT/bin"
CRDS="$ROOT/crds"
SRC="$ROOT/src"

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok kserve-manager controller-gen)
CRD_DIRS=(kserve gateway-api)

# The pieces of piece-versions.env: output directory under crds/ and the stamp its .complete must hold.
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
PROMETHEUS_OPERATOR_STAMP="$PROMETHEUS_OPERATOR_MODULE@v$PROMETHEUS_OPERATOR_VERSION controller-gen@v$CONTROLLER_TOOLS_VERSION"

stamped() {  # stamped DIR STAMP: the piece in DIR is complete and was made from exactly these versions
  [[ -f "$1/.complete" && "$(<"$1/.complete")" == "$2" ]]
}

complete() {
  local name
  for name in "${BINARIES[@]}"; do [[ -x "$BIN/$name" ]] || return 1; done
  for name in "${CRD_DIRS[@]}"; do [[ -f "$CRDS/$name/.complete" ]] || return 1; done
  stamped "$CRDS/prometheus-operator" "$PROMETHEUS_OPERATOR_STAMP" || return 1
  [[ -f "$ROOT/kwok/stages.yaml" ]]
}

case "${1:-}" in
  --print-dir) echo "$ROOT"; exit 0 ;;
  --check) complete; exit $? ;;
  "") ;;
  *) echo "usage: $0 [--print-dir | --check]" >&2; exit 2 ;;
esac

command -v go >/dev/null 2>&1 || {
  echo "error: 'go' is not on PATH; the cluster test tier needs Go >= 1.26 and the Go module proxy" >&2
  exit 127
}

# Every module here declares go <= 1.26.0, so the local toolchain builds them all; no toolchain download.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$BIN" "$CRDS" "$SRC"

STEP_MODULE="" STEP_VERSION="" STEP_NAME=""
on_error() {
  echo "k8s-build: FAILED at step '$STEP_NAME' (module $STEP_MODULE, version $STEP_VERSION); see the go output above" >&2
}
trap on_error ERR

step() {  # step MODULE VERSION NAME: remember what is being done, so a failure names it
  STEP_MODULE="$1" STEP_VERSION="$2" STEP_NAME="$3"
  echo "k8s-build: [$(date -u +%H:%M:%S)] $STEP_MODULE@$STEP_VERSION: $STEP_NAME"
}

timed() {  # timed LABEL: print how long the piece took since the last call
  local now=$SECONDS
  echo "k8s-build: $1 done in $((now - PIECE_START)) s"
  PIECE_START=$now
}

wrapper() {  # wrapper NAME: a fresh wrapper module directory; prints its path
  local dir="$SRC/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init "local/fraud-platform-k8s/$1" >/dev/null 2>&1)
  echo "$dir"
}

install_binary() {  # install_binary TMPDIR NAME: move a finished binary into bin/
  mv -f "$1/$2" "$BIN/$2"
}

NET_ERRORS='TLS handshake timeout|connection reset|connection refused|i/o timeout|timeout awaiting|unexpected EOF|no such host|502 Bad Gateway|503 Service Unavailable|504 Gateway Timeout'
go_net() {  # go_net ARGS...: run `go ARGS`, retrying twice (after 15 s, then 60 s) when it failed on the network
  # A module download that hits a transient proxy error (seen: a TLS handshake timeout) would otherwise fail a cold
  # CI run that has already spent many minutes building; compile errors are not retried.
  local attempt log status
  log="$(mktemp)"
  for attempt in 1 2 3; do
    status=0
    go "$@" 2> >(tee "$log" >&2) || status=$?
    wait  # the tee of stderr has finished writing the log
    (( status == 0 )) && { rm -f "$log"; return 0; }
    if (( attempt < 3 )) && grep -Eq "$NET_ERRORS" "$log"; then
      echo "k8s-build: network error from the module proxy (attempt $attempt of 3); retrying" >&2
      sleep $(( attempt == 1 ? 15 : 60 ))
    else
      rm -f "$log"; return "$status"
    fi
  done
}

PIECE_START=$SECONDS
TOTAL_START=$SECONDS
echo "k8s-build: cache $ROOT"

# --- etcd -----------------------------------------------------------------------------------------------------------
if [[ ! -x "$BIN/etcd" ]]; then
  dir="$(wrapper etcd)"; cd "$dir"
  step go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" "go get (module graph)"
  go_net get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  step go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" "go build etcd"
  go_net build -trimpath -ldflags "-s -w" -o "$dir/out/etcd" go.etcd.io/etcd/server/v3
  install_binary "$dir/out" etcd
  timed etcd
fi

# --- kube-apiserver, kube-controller-manager, kube-scheduler --------------------------------------------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at ./staging, which only works inside its
# own repository; the wrapper replaces each of them with its published version (the list comes from upstream's
# go.mod), keeps upstream's godebug defaults, and stamps the version so /version and --version are right.
if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" || ! -x "$BIN/kube-scheduler" ]]; then
  dir="$(wrapper kubernetes)"; cd "$dir"
  step k8s.io/kubernetes "v$KUBERNETES_VERSION" "download go.mod"
  upstream_mod="$(go_net mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" \
    | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -f "$upstream_mod" ]] || { echo "k8s-build: no go.mod for k8s.io/kubernetes@v$KUBERNETES_VERSION" >&2; false; }
  step k8s.io/kubernetes "v$KUBERNETES_VERSION" "replace staging modules with v$KUBERNETES_STAGING_VERSION"
  staging=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod")
  for module in $staging; do go mod edit -replace="$module=$module@v$KUBERNETES_STAGING_VERSION"; done
  grep '^godebug' "$upstream_mod" >>go.mod || true
  step k8s.io/kubernetes "v$KUBERNETES_VERSION" "go get (module graph)"
  go_net get "k8s.io/kubernetes@v$KUBERNETES_VERSION"
  minor="${KUBERNETES_VERSION#*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$BIN/$cmd" ]] && continue
    step k8s.io/kubernetes "v$KUBERNETES_VERSION" "go build $cmd"
    go_net build -trimpath -ldflags "$ldflags" -o "$dir/out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    install_binary "$dir/out" "$cmd"
    timed "$cmd"
  done
fi

# --- kwok -----------------------------------------------------------------------------------------------------------
# Fake nodes: kwok marks nodes Ready and pods Running without a kubelet or containers. kwokctl is not built: the
# test fixture starts each process itself, on ports it allocates.
if [[ ! -x "$BIN/kwok" ]]; then
  dir="$(wrapper kwok)"; cd "$dir"
  step sigs.k8s.io/kwok "v$KWOK_VERSION" "go get (module graph)"
  go_net get "sigs.k8s.io/kwok@v$KWOK_VERSION"
  step sigs.k8s.io/kwok "v$KWOK_VERSION" "go build kwok"
  go_net build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    -o "$dir/out/kwok" sigs.k8s.io/kwok/cmd/kwok
  install_binary "$dir/out" kwok
  timed kwok
fi
if [[ ! -f "$ROOT/kwok/stages.yaml" ]]; then
  dir="$SRC/kwok"
  [[ -f "$dir/go.mod" ]] || { dir="$(wrapper kwok)"; (cd "$dir" && go_net get "sigs.k8s.io/kwok@v$KWOK_VERSION"); }
  cd "$dir"
  step sigs.k8s.io/kwok "v$KWOK_VERSION" "print the default node and pod stages (hack/k8s/kwokstages)"
  mkdir -p "$dir/kwokstages" "$ROOT/kwok"
  cp "$HERE/kwokstages/main.go" "$dir/kwokstages/main.go"
  go run ./kwokstages >"$ROOT/kwok/stages.yaml.tmp"
  mv -f "$ROOT/kwok/stages.yaml.tmp" "$ROOT/kwok/stages.yaml"
fi

# --- KServe manager and its CRDs ------------------------------------------------------------------------------------
# KServe's go.mod pins modules with replace and exclude directives; those only apply inside its own module, so the
# wrapper copies every one of them.
if [[ ! -x "$BIN/kserve-manager" || ! -f "$CRDS/kserve/.complete" || ! -x "$BIN/controller-gen" \
  || ! -f "$CRDS/gateway-api/.complete" ]]; then
  dir="$(wrapper kserve)"; cd "$dir"
  step github.com/kserve/kserve "v$KSERVE_VERSION" "download go.mod"
  kserve_mod="$(go_net mod download -json "github.com/kserve/kserve@v$KSERVE_VERSION" \
    | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -f "$kserve_mod" ]] || { echo "k8s-build: no go.mod for github.com/kserve/kserve@v$KSERVE_VERSION" >&2; false; }
  step github.com/kserve/kserve "v$KSERVE_VERSION" "copy replace/exclude directives"
  go mod edit -json "$kserve_mod" | python3 -c '
import json, sys
m = json.load(sys.stdin)
for r in m.get("Replace") or []:
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    new = r["New"]["Path"] + ("@" + r["New"]["Version"] if r["New"].get("Version") else "")
    print("-replace=" + old + "=" + new)
for e in m.get("Exclude") or []:
    print("-exclude=" + e["Path"] + "@" + e["Version"])
' | xargs -r go mod edit
  step github.com/kserve/kserve "v$KSERVE_VERSION" "go get (module graph)"
  go_net get "github.com/kserve/kserve@v$KSERVE_VERSION"
  if [[ ! -x "$BIN/kserve-manager" ]]; then
    step github.com/kserve/kserve "v$KSERVE_VERSION" "go build cmd/manager"
    go_net build -trimpath -ldflags "-s -w" -o "$dir/out/kserve-manager" github.com/kserve/kserve/cmd/manager
    install_binary "$dir/out" kserve-manager
    timed kserve-manager
  fi
  if [[ ! -x "$BIN/controller-gen" ]]; then
    # Built in its own module: controller-tools pins its own k8s.io versions.
    cdir="$(wrapper controller-gen)"; cd "$cdir"
    step sigs.k8s.io/controller-tools "v$CONTROLLER_TOOLS_VERSION" "go get (module graph)"
    go_net get "sigs.k8s.io/controller-tools@v$CONTROLLER_TOOLS_VERSION"
    step sigs.k8s.io/controller-tools "v$CONTROLLER_TOOLS_VERSION" "go build controller-gen"
    go_net build -trimpath -ldflags "-s -w" -o "$cdir/out/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen
    install_binary "$cdir/out" controller-gen
    timed controller-gen
    cd "$dir"
  fi
  if [[ ! -f "$CRDS/kserve/.complete" ]]; then
    # The same generator invocation as KServe's own Makefile (crd:maxDescLen=0 over pkg/apis/serving/...).
    step github.com/kserve/kserve "v$KSERVE_VERSION" "controller-gen CRDs from pkg/apis/serving"
    rm -rf "$CRDS/kserve.tmp" && mkdir -p "$CRDS/kserve.tmp"
    "$BIN/controller-gen" crd:maxDescLen=0 paths=github.com/kserve/kserve/pkg/apis/serving/... \
      output:crd:dir="$CRDS/kserve.tmp"
    touch "$CRDS/kserve.tmp/.complete"
    rm -rf "$CRDS/kserve" && mv "$CRDS/kserve.tmp" "$CRDS/kserve"
    timed "KServe CRDs"
  fi
fi

# --- Gateway API CRDs -----------------------------------------------------------------------------------------------
# Generated with controller-gen from the Gateway API types KServe builds against (its go.mod), inside the KServe
# wrapper module. Gateway API's release YAML is split into channels by its own tooling; controller-gen keeps every
# field (standard and experimental), which admits a superset of what a standard-channel install admits.
if [[ ! -f "$CRDS/gateway-api/.complete" ]]; then
  cd "$SRC/kserve"
  step sigs.k8s.io/gateway-api "v$GATEWAY_API_VERSION" "controller-gen CRDs from apis/v1 and apis/v1beta1"
  rm -rf "$CRDS/gateway-api.tmp" && mkdir -p "$CRDS/gateway-api.tmp"
  "$BIN/controller-gen" crd:maxDescLen=0 paths=sigs.k8s.io/gateway-api/apis/v1 \
    paths=sigs.k8s.io/gateway-api/apis/v1beta1 output:crd:dir="$CRDS/gateway-api.tmp"
  touch "$CRDS/gateway-api.tmp/.complete"
  rm -rf "$CRDS/gateway-api" && mv "$CRDS/gateway-api.tmp" "$CRDS/gateway-api"
  timed "Gateway API CRDs"
fi

# --- Prometheus Operator CRDs (piece-versions.env) -------------------------------------------------------------------
# ServiceMonitor, PrometheusRule and the rest of monitoring.coreos.com/v1, generated with the set's controller-gen from
# the Operator's API module in a wrapper of its own (it pins its own k8s.io versions), as the Operator's Makefile does
# (`controller-gen crd:crdVersions=v1 paths=./v1/.`; descriptions left out, as for the other CRDs here). The tier
# installs ServiceMonitor and PrometheusRule, so the chart's monitoring objects meet their real schemas.
if ! stamped "$CRDS/prometheus-operator" "$PROMETHEUS_OPERATOR_STAMP"; then
  dir="$(wrapper prometheus-operator)"; cd "$dir"
  step "$PROMETHEUS_OPERATOR_MODULE" "v$PROMETHEUS_OPERATOR_VERSION" "go get (module graph)"
  go_net get "$PROMETHEUS_OPERATOR_MODULE@v$PROMETHEUS_OPERATOR_VERSION"
  step "$PROMETHEUS_OPERATOR_MODULE" "v$PROMETHEUS_OPERATOR_VERSION" "controller-gen CRDs from v1 (controller-gen v$CONTROLLER_TOOLS_VERSION)"
  rm -rf "$CRDS/prometheus-operator.tmp" && mkdir -p "$CRDS/prometheus-operator.tmp"
  "$BIN/controller-gen" crd:crdVersions=v1,maxDescLen=0 paths="$PROMETHEUS_OPERATOR_MODULE/v1" \
    output:crd:dir="$CRDS/prometheus-operator.tmp"
  step "$PROMETHEUS_OPERATOR_MODULE" "v$PROMETHEUS_OPERATOR_VERSION" "check ServiceMonitor and PrometheusRule were generated"
  for kind in servicemonitors prometheusrules; do
    [[ -f "$CRDS/prometheus-operator.tmp/monitoring.coreos.com_$kind.yaml" ]] || {
      echo "k8s-build: controller-gen wrote no monitoring.coreos.com_$kind.yaml" >&2; false; }
  done
  printf '%s' "$PROMETHEUS_OPERATOR_STAMP" >"$CRDS/prometheus-operator.tmp/.complete"
  rm -rf "$CRDS/prometheus-operator" && mv "$CRDS/prometheus-operator.tmp" "$CRDS/prometheus-operator"
  timed "Prometheus Operator CRDs"
fi

trap - ERR
echo "k8s-build: complete in $((SECONDS - TOTAL_START)) s; binaries in $BIN"
du -sh "$BIN" 2>/dev/null | sed 's/^/k8s-build: binaries: /'
