#!/usr/bin/env bash
# Create the kind cluster with its local registry and install the platform's prerequisites from manifests/,
# waiting for each to be ready before the next needs it. Called by `make cluster-up`; safe to re-run.
#
# Written for a machine with Docker, kind (>= v0.33.0) and kubectl; it was not run on the build machine, which has
# no Docker engine. Order matters: cert-manager before KServe (webhook certificate), Envoy Gateway before the
# Gateway objects, KServe before the Gateway (its namespace), KFP cluster-scoped resources before KFP itself.
set -euo pipefail

CLUSTER_NAME=${CLUSTER_NAME:-fraud-platform}
REGISTRY_NAME=${REGISTRY_NAME:-kind-registry}
REGISTRY_PORT=${REGISTRY_PORT:-5001}
REGISTRY_IMAGE=${REGISTRY_IMAGE:-registry:3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MANIFESTS="${ROOT}/manifests"

step() { printf '\n>> %s\n' "$*"; }

step "local registry '${REGISTRY_NAME}' on 127.0.0.1:${REGISTRY_PORT}"
if [ "$(docker inspect -f '{{.State.Running}}' "${REGISTRY_NAME}" 2>/dev/null || true)" != "true" ]; then
  docker run -d --restart=always -p "127.0.0.1:${REGISTRY_PORT}:5000" --network bridge \
    --name "${REGISTRY_NAME}" "${REGISTRY_IMAGE}"
fi

step "kind cluster '${CLUSTER_NAME}' from kind-config.yaml"
if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  echo "cluster exists"
  # A re-run must act on this cluster, whatever context another tool selected since: write its kubeconfig entry
  # and make it the current context again.
  kind export kubeconfig --name "${CLUSTER_NAME}"
else
  kind create cluster --name "${CLUSTER_NAME}" --config "${ROOT}/kind-config.yaml" --wait 120s
fi
# Every kubectl below names the context explicitly, so nothing can land on another cluster even if the current
# context changes while this script runs.
CONTEXT="kind-${CLUSTER_NAME}"
kubectl() { command kubectl --context "${CONTEXT}" "$@"; }

step "containerd mirror localhost:${REGISTRY_PORT} -> http://${REGISTRY_NAME}:5000 on every node"
# "localhost" inside a node is the node itself, so the nodes reach the registry container by name on the kind network.
registry_dir="/etc/containerd/certs.d/localhost:${REGISTRY_PORT}"
for node in $(kind get nodes --name "${CLUSTER_NAME}"); do
  docker exec "${node}" mkdir -p "${registry_dir}"
  printf '[host."http://%s:5000"]\n' "${REGISTRY_NAME}" | docker exec -i "${node}" cp /dev/stdin "${registry_dir}/hosts.toml"
done
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "${REGISTRY_NAME}")" = "null" ]; then
  docker network connect kind "${REGISTRY_NAME}"
fi
# Tell tools where the local registry is (KEP-1755).
kubectl apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REGISTRY_PORT}"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
EOF

step "cert-manager (manifests/cert-manager)"
kubectl apply --server-side -k "${MANIFESTS}/cert-manager"
kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=5m

step "Envoy Gateway and the Gateway API CRDs (manifests/envoy-gateway)"
kubectl apply --server-side -k "${MANIFESTS}/envoy-gateway"
kubectl wait --for=condition=Established crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io \
  crd/envoyproxies.gateway.envoyproxy.io --timeout=2m
kubectl -n envoy-gateway-system wait --for=condition=Available deployment/envoy-gateway --timeout=5m

step "KServe in Standard mode with the Gateway API (manifests/kserve)"
# The webhook's certificate is issued by cert-manager a few seconds after the CRDs land; retry the apply until the
# webhook answers rather than failing on the first race.
applied=false
for attempt in 1 2 3 4 5; do
  if kubectl apply --server-side --force-conflicts -k "${MANIFESTS}/kserve"; then applied=true; break; fi
  echo "retrying in 15 s (attempt ${attempt} of 5)"; sleep 15
done
if [ "${applied}" != true ]; then
  echo "error: KServe (manifests/kserve) did not apply after 5 attempts; see the errors above" >&2
  exit 1
fi
kubectl -n kserve wait --for=condition=Available deployment/kserve-controller-manager --timeout=5m
# The controller reads inferenceservice-config at start: restart it so the patched mode is in force.
kubectl -n kserve rollout restart deployment/kserve-controller-manager
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout=5m

step "Gateway kserve/kserve-ingress-gateway on NodePort 30080 (manifests/gateway)"
kubectl apply -k "${MANIFESTS}/gateway"
kubectl -n kserve wait --for=condition=Programmed gateway/kserve-ingress-gateway --timeout=5m

step "Kubeflow Pipelines standalone (manifests/kubeflow-pipelines)"
kubectl apply --server-side -k "${MANIFESTS}/kubeflow-pipelines/cluster-scoped"
kubectl wait --for=condition=Established crd/applications.app.k8s.io --timeout=2m
kubectl apply --server-side --force-conflicts -k "${MANIFESTS}/kubeflow-pipelines"
kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout=15m

step "ready: next 'make images deploy', then 'make pipeline-submit'"
