#!/usr/bin/env bash
# mTLS cost on the proxy (not a test; issue 21): the same request through octo-proxy and through
# nginx, once in plaintext and once with mTLS on both legs (client → proxy: TLS 1.3 with a client
# certificate, verified; proxy → upstream: TLS with the proxy's certificate, the upstream's
# verified), one run, same machine, same pinning. Prints each target's figures, then the added
# cost of mTLS (mTLS − plaintext) of octo beside nginx's, as ratios.
#
#   bench/proxy-tls/run.sh        # DURATION=8 s per measurement, ROUNDS=3 interleaved rounds, RATE=1000
#
# - CPU per request: requests per CPU-second of the proxy's own processes (from /proc) at
#   saturation on keep-alive connections (32), inverted: µs of proxy CPU per request.
# - Latency: p50/p99 at RATE req/s on keep-alive connections, pooled over the rounds.
# - Handshakes: one new mTLS connection per request (16 at a time; the upstream leg stays
#   kept alive), as handshakes per CPU-second of the proxy — per core.
# Pinning: the proxy on $PROXY_CPU; upstream (nginx, 1 KB body) and load generator (node, since
# wrk cannot present a client certificate) share $LOAD_CPU. Certificates: ECDSA P-256 from openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
NODE="$ROOT/node_modules/.bin/node"
NGINX=${NGINX:-/usr/sbin/nginx}
OPENSSL=/usr/bin/openssl
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-1000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORK=$(mktemp -d /tmp/octo-bench-tls.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
node_modules/.bin/tsc -b packages/proxy

UP=18180; UPS=18181; NGX=18182; NGXS=18183; OCTO=18184; OCTOS=18185; OCTO_ADMIN=18186
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

# --- certificates (ECDSA P-256, SPIFFE URI SANs; the upstream's also a DNS name nginx can verify)
P="$WORK/pki"; mkdir -p "$P" "$WORK/sds" "$WORK/up" "$WORK/ngx"
$OPENSSL req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -keyout "$P/root.key" -out "$P/root.crt" -subj /CN=bench-root -days 30 \
  -addext basicConstraints=critical,CA:TRUE,pathlen:0 -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() { # name san
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$2" > "$P/$1.ext"
  $OPENSSL req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "/O=bench" 2>/dev/null
  $OPENSSL x509 -req -sha256 -in "$P/$1.csr" -CA "$P/root.crt" -CAkey "$P/root.key" -set_serial "0x$($OPENSSL rand -hex 8)" -days 2 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
leaf proxy URI:spiffe://cluster.local/ns/bench/sa/proxy
leaf client URI:spiffe://cluster.local/ns/bench/sa/client
leaf upstream URI:spiffe://cluster.local/ns/bench/sa/upstream,DNS:upstream.bench
"$NODE" -e '
const fs = require("fs"); const [p, sds] = process.argv.slice(1); const T = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
fs.writeFileSync(sds + "/default.json", JSON.stringify({ resources: [{ "@type": T, name: "default", tls_certificate: { certificate_chain: { inline_string: fs.readFileSync(p + "/proxy.crt", "utf8") }, private_key: { inline_string: fs.readFileSync(p + "/proxy.key", "utf8") } } }] }));
fs.writeFileSync(sds + "/ROOTCA.json", JSON.stringify({ resources: [{ "@type": T, name: "ROOTCA", validation_context: { trusted_ca: { inline_string: fs.readFileSync(p + "/root.crt", "utf8") } } }] }));
' "$P" "$WORK/sds"

# --- upstream: plaintext and mTLS, same 1 KB answer
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/up/nginx.pid; error_log $WORK/up/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type text/plain; return 200 "$BODY"; } }
  server { listen 127.0.0.1:$UPS ssl; ssl_certificate $P/upstream.crt; ssl_certificate_key $P/upstream.key;
    ssl_client_certificate $P/root.crt; ssl_verify_client on;
    location / { default_type text/plain; return 200 "$BODY"; } } }
CONF
# --- nginx doing the same proxying: plaintext, and mTLS on both legs
cat > "$WORK/ngx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/ngx/nginx.pid; error_log $WORK/ngx/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  upstream ups { server 127.0.0.1:$UPS; keepalive 256; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$NGXS ssl; ssl_certificate $P/proxy.crt; ssl_certificate_key $P/proxy.key;
    ssl_client_certificate $P/root.crt; ssl_verify_client on;
    location / { proxy_pass https://ups; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate $P/proxy.crt; proxy_ssl_certificate_key $P/proxy.key;
      proxy_ssl_trusted_certificate $P/root.crt; proxy_ssl_verify on; proxy_ssl_name upstream.bench; proxy_ssl_session_reuse on; } } }
CONF
"$NODE" bench/proxy-tls/octo-bootstrap.mjs $OCTO $OCTOS $OCTO_ADMIN $UP $UPS "$WORK/sds" > "$WORK/octo.json"

declare -A PID
taskset -c "$LOAD_CPU" "$NGINX" -c "$WORK/up/nginx.conf" & PIDS+=($!)
taskset -c "$PROXY_CPU" "$NGINX" -c "$WORK/ngx/nginx.conf" & PIDS+=($!); PID[nginx]=$!
taskset -c "$PROXY_CPU" "$NODE" packages/proxy/dist/main.js --config "$WORK/octo.json" > "$WORK/octo.log" 2>&1 & PIDS+=($!); PID[octo]=$!
for p in $UP $UPS $NGX $NGXS $OCTO $OCTOS; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
export CA="$P/root.crt" CERT="$P/client.crt" KEY="$P/client.key"
load() { taskset -c "$LOAD_CPU" nice -n 5 "$NODE" bench/proxy-tls/load.mjs "$@"; }
for u in "https://127.0.0.1:$OCTOS/" "https://127.0.0.1:$NGXS/"; do
  load sat "$u" 1 4 | grep -q '"errors":0' || { echo "no clean answer from $u"; cat "$WORK/octo.log" "$WORK/ngx/error.log"; exit 1; }
done

cpu_ticks() { local total=0 p; for p in "$1" $(pgrep -P "$1" || true); do [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$total"; }
per_cpu() { # mode url pid [n] -> "rps per-cpu-second p50 p99 errors"
  local t0 t1 out; t0=$(cpu_ticks "$3"); out=$(load "$1" "$2" "$DURATION" ${4:-}); t1=$(cpu_ticks "$3")
  echo "$out" | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const cpu=('"$t1"'-'"$t0"')/'"$(getconf CLK_TCK)"';console.log(j.rps, cpu>0?Math.round(j.requests/cpu):0, j.p50_us, j.p99_us, j.errors)})'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

TARGETS="nginx-plain:nginx:http://127.0.0.1:$NGX/ nginx-mtls:nginx:https://127.0.0.1:$NGXS/ octo-plain:octo:http://127.0.0.1:$OCTO/ octo-mtls:octo:https://127.0.0.1:$OCTOS/"
# Warm-up (JIT, pools, TLS session state).
for t in $TARGETS; do IFS=: read -r name proc rest <<<"$t"; load sat "${t#*:*:}" 3 16 >/dev/null; done
declare -A PERCPU P50 P99 HS ERR
for round in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
    name=${t%%:*}; rest=${t#*:}; proc=${rest%%:*}; url=${rest#*:}
    read -r rps pc _ _ e < <(per_cpu sat "$url" "${PID[$proc]}" 32)
    read -r _ _ a b e2 < <(per_cpu rate "$url" "${PID[$proc]}" "$RATE")
    PERCPU[$name]="${PERCPU[$name]:-} $pc"; P50[$name]="${P50[$name]:-} $a"; P99[$name]="${P99[$name]:-} $b"; ERR[$name]=$(( ${ERR[$name]:-0} + e + e2 ))
    echo "round $round $name: $rps rps saturated ($pc per proxy CPU-second), p50 ${a}us p99 ${b}us at $RATE rps, errors $((e + e2))" >&2
    if [[ $name == *mtls ]]; then
      read -r hrps hpc _ _ he < <(per_cpu handshake "$url" "${PID[$proc]}" 16)
      HS[$name]="${HS[$name]:-} $hpc"; ERR[$name]=$(( ${ERR[$name]} + he ))
      echo "round $round $name: $hrps new mTLS connections/s ($hpc per proxy CPU-second), errors $he" >&2
    fi
  done
done
declare -A M
for t in $TARGETS; do name=${t%%:*}; M[$name.cpu]=$(echo "${PERCPU[$name]}" | median); M[$name.p50]=$(echo "${P50[$name]}" | median); M[$name.p99]=$(echo "${P99[$name]}" | median); done
for n in nginx-mtls octo-mtls; do M[$n.hs]=$(echo "${HS[$n]}" | median); done
us() { awk -v r="$1" 'BEGIN { printf "%.1f", (r > 0 ? 1e6 / r : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

echo
echo "## mTLS on the proxy ($(date -u +%F), $(nproc) cores, ${DURATION}s per measurement, medians of $ROUNDS interleaved rounds, proxy on CPU $PROXY_CPU, load+upstream on CPU $LOAD_CPU, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| target | requests per proxy CPU-second | proxy CPU µs per request | p50 µs @${RATE}rps | p99 µs @${RATE}rps | new mTLS connections per proxy CPU-second | errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for t in $TARGETS; do name=${t%%:*}; echo "| $name | ${M[$name.cpu]} | $(us "${M[$name.cpu]}") | ${M[$name.p50]} | ${M[$name.p99]} | ${M[$name.hs]:-—} | ${ERR[$name]} |"; done
OA=$(sub "$(us "${M[octo-mtls.cpu]}")" "$(us "${M[octo-plain.cpu]}")"); NA=$(sub "$(us "${M[nginx-mtls.cpu]}")" "$(us "${M[nginx-plain.cpu]}")")
O50=$(sub "${M[octo-mtls.p50]}" "${M[octo-plain.p50]}"); N50=$(sub "${M[nginx-mtls.p50]}" "${M[nginx-plain.p50]}")
O99=$(sub "${M[octo-mtls.p99]}" "${M[octo-plain.p99]}"); N99=$(sub "${M[nginx-mtls.p99]}" "${M[nginx-plain.p99]}")
echo
echo "| added by mTLS (mTLS − plaintext) | octo | nginx | octo / nginx |"
echo "| --- | ---: | ---: | ---: |"
echo "| proxy CPU µs per request | $OA | $NA | $(ratio "$OA" "$NA") |"
echo "| p50 µs @${RATE}rps | $O50 | $N50 | $(ratio "$O50" "$N50") |"
echo "| p99 µs @${RATE}rps | $O99 | $N99 | $(ratio "$O99" "$N99") |"
echo "| mTLS handshakes per CPU-second (per core) | ${M[octo-mtls.hs]} | ${M[nginx-mtls.hs]} | $(ratio "${M[octo-mtls.hs]}" "${M[nginx-mtls.hs]}") |"
echo "| octo mTLS / plaintext requests per CPU-second | $(ratio "${M[octo-mtls.cpu]}" "${M[octo-plain.cpu]}") | $(ratio "${M[nginx-mtls.cpu]}" "${M[nginx-plain.cpu]}") (nginx) | — |"
