#!/usr/bin/env bash
# Reference run of the built etcd + kube-apiserver on loopback: generates certs
# with openssl, starts both, waits for /readyz, runs `kubectl get ns`, then
# stops exactly the two processes it started. This is the executable version of
# the flag set documented in README.md; the TypeScript harness mirrors it.
#
# usage: e2e/cluster/smoke.sh [--keep]   (--keep: leave the work dir for inspection)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$("${HERE}/build-tools.sh" --print-bin)" || { echo "run e2e/cluster/build-tools.sh first" >&2; exit 1; }
W="$(mktemp -d /tmp/octo-k8s-smoke.XXXXXX)"
KEEP="${1:-}"
ETCD_PID="" APISERVER_PID=""
cleanup() {
  [[ -n "$APISERVER_PID" ]] && kill "$APISERVER_PID" 2>/dev/null && wait "$APISERVER_PID" 2>/dev/null || true
  [[ -n "$ETCD_PID" ]] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null || true
  if [[ "$KEEP" == --keep ]]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ETCD_CLIENT_PORT="$(free_port)"; ETCD_PEER_PORT="$(free_port)"; API_PORT="$(free_port)"

# --- PKI: one CA; apiserver serving cert; admin client cert; SA signing key ---
t0=$(date +%s.%N)
cd "$W"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
  -subj "/CN=octo-mesh-test-ca" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
  -subj "/CN=kube-apiserver" 2>/dev/null
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
  -out apiserver.crt -extfile <(printf '%s\n' \
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment") 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
  -subj "/O=system:masters/CN=octo-admin" 2>/dev/null
openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
  -out admin.crt -extfile <(printf '%s\n' "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment") 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
TOKEN="$(openssl rand -hex 16)"
echo "${TOKEN},octo-admin,octo-admin,system:masters" > tokens.csv
printf '[smoke] certs generated in %.2fs\n' "$(echo "$(date +%s.%N) - $t0" | bc)" >&2

# --- etcd ---
t_start=$(date +%s.%N)
"${BIN}/etcd" \
  --name=octo-test \
  --data-dir="$W/etcd-data" \
  --listen-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
  --advertise-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
  --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="octo-test=http://127.0.0.1:${ETCD_PEER_PORT}" \
  --unsafe-no-fsync \
  --log-level=warn \
  >"$W/etcd.log" 2>&1 &
ETCD_PID=$!
until curl -sf "http://127.0.0.1:${ETCD_CLIENT_PORT}/health" | grep -q '"health":"true"'; do
  kill -0 "$ETCD_PID" 2>/dev/null || { cat "$W/etcd.log" >&2; exit 1; }
  sleep 0.05
done
printf '[smoke] etcd healthy after %.2fs (pid %s, port %s)\n' "$(echo "$(date +%s.%N) - $t_start" | bc)" "$ETCD_PID" "$ETCD_CLIENT_PORT" >&2

# --- kube-apiserver ---
t_api=$(date +%s.%N)
"${BIN}/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="${API_PORT}" \
  --tls-cert-file="$W/apiserver.crt" \
  --tls-private-key-file="$W/apiserver.key" \
  --client-ca-file="$W/ca.crt" \
  --token-auth-file="$W/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$W/sa.pub" \
  --service-account-signing-key-file="$W/sa.key" \
  --service-cluster-ip-range=10.96.0.0/12 \
  --authorization-mode=RBAC \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  >"$W/apiserver.log" 2>&1 &
APISERVER_PID=$!
until [[ "$(curl -s --cacert "$W/ca.crt" -H "Authorization: Bearer ${TOKEN}" "https://127.0.0.1:${API_PORT}/readyz" 2>/dev/null)" == ok ]]; do
  kill -0 "$APISERVER_PID" 2>/dev/null || { tail -50 "$W/apiserver.log" >&2; exit 1; }
  sleep 0.1
done
printf '[smoke] kube-apiserver /readyz ok after %.2fs (pid %s, port %s)\n' "$(echo "$(date +%s.%N) - $t_api" | bc)" "$APISERVER_PID" "$API_PORT" >&2

cat > "$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: octo-test
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority: $W/ca.crt
users:
- name: octo-admin
  user:
    client-certificate: $W/admin.crt
    client-key: $W/admin.key
contexts:
- name: octo-test
  context: {cluster: octo-test, user: octo-admin}
current-context: octo-test
EOF
kubectl --kubeconfig "$W/kubeconfig" version
kubectl --kubeconfig "$W/kubeconfig" get ns
kubectl --kubeconfig "$W/kubeconfig" auth whoami
# the static bearer token works too (what a TS client can use without a kubeconfig)
curl -sf --cacert "$W/ca.crt" -H "Authorization: Bearer ${TOKEN}" \
  "https://127.0.0.1:${API_PORT}/api/v1/namespaces/default" | grep -q '"name": "default"'
echo "[smoke] OK" >&2
