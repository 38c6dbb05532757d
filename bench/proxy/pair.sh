#!/usr/bin/env bash
# Paired A/B of two octo-proxy builds (not a test): the same upstream (nginx on CPU 1), both
# proxies on CPU 0, N pairs of short wrk (HTTP/1.1) and h2load (HTTP/2) runs, the order swapped every
# other pair; prints requests per proxy CPU-second of each and their ratio per pair. Short pairs
# measured back to back track a busy machine's load better than one long run per build.
#
#   MINE=…/dist/main.js BASE=…/dist/main.js [N=12] [D=5] bench/proxy/pair.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MINE:?MINE=path of the build to measure (dist/main.js)}" "${BASE:?BASE=path of the baseline build}"
NODE=node_modules/.bin/node; D=${D:-5}; N=${N:-10}
W=$(mktemp -d /tmp/octo-pair.XXXXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat > $W/up.conf <<CONF
worker_processes 1; daemon off; pid $W/up.pid; error_log $W/up.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18280; location / { default_type text/plain; return 200 "$BODY"; } } }
CONF
$NODE bench/proxy/octo-bootstrap.mjs 18286 18287 18288 18280 > $W/a.json
$NODE bench/proxy/octo-bootstrap.mjs 18296 18297 18298 18280 > $W/b.json
taskset -c 1 nginx -c $W/up.conf & PIDS+=($!)
taskset -c 0 $NODE "$MINE" --config $W/a.json > $W/a.log 2>&1 & PIDS+=($!); A=$!
taskset -c 0 $NODE "$BASE" --config $W/b.json > $W/b.log 2>&1 & PIDS+=($!); B=$!
for p in 18280 18286 18296; do for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done; done
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
h1() { local t0 t1 n; t0=$(ticks $2); n=$(taskset -c 1 wrk -t1 -c64 -d${D}s -H 'Host: bench' http://127.0.0.1:$1/ | awk '/requests in/ {print $1}'); t1=$(ticks $2); awk -v n=$n -v a=$t0 -v b=$t1 -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%d", n/((b-a)/hz)}'; }
h2() { local t0 t1 n; t0=$(ticks $2); n=$(taskset -c 1 h2load -D $D -c8 -m16 -t1 -H 'host: bench' http://127.0.0.1:$1/ 2>/dev/null | awk '/^requests:/ {print $4}'); t1=$(ticks $2); awk -v n=$n -v a=$t0 -v b=$t1 -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%d", n/((b-a)/hz)}'; }
for p in 18286 18296; do taskset -c 1 wrk -t1 -c16 -d3s -H 'Host: bench' http://127.0.0.1:$p/ > /dev/null; done
for i in $(seq 1 $N); do
  if [ $((i % 2)) -eq 1 ]; then a=$(h1 18286 $A); b=$(h1 18296 $B); else b=$(h1 18296 $B); a=$(h1 18286 $A); fi
  echo "h1 $i mine $a base $b $(awk -v a=$a -v b=$b 'BEGIN{printf "%.3f", a/b}') load $(cut -d' ' -f1 /proc/loadavg)"
done
for i in $(seq 1 $N); do
  if [ $((i % 2)) -eq 1 ]; then a=$(h2 18286 $A); b=$(h2 18296 $B); else b=$(h2 18296 $B); a=$(h2 18286 $A); fi
  echo "h2 $i mine $a base $b $(awk -v a=$a -v b=$b 'BEGIN{printf "%.3f", a/b}') load $(cut -d' ' -f1 /proc/loadavg)"
done
rm -rf $W
