#!/usr/bin/env bash
# Paired A/B of two octo-proxy builds (not a test): requests per proxy CPU-second of build A
# (BASE, a copy of an earlier packages/proxy/dist) and build B (packages/proxy/dist), both on
# CPU $PROXY_CPU with the benchmark's realistic config, behind one nginx upstream on $LOAD_CPU.
# Each round loads A and B *at the same time* (one wrk -c32 each), so interference from other
# work on the machine hits both alike; the figure is the median ratio B/A over the rounds.
#
#   BASE=/path/to/old/dist bench/proxy/ab.sh        # D=5 s per round, R=6 rounds, NOTCP=1 skips TCP mode
#   BASE=packages/proxy/dist B_FLAGS="--max-semi-space-size=1" bench/proxy/ab.sh   # Node/V8 flags of one side
#   (A_FLAGS, B_FLAGS: flags for node before the entry; B_ENTRY: another entry for B, e.g. a bundle)
#
# BASE must sit under the repository (e.g. tmp/base, ignored by git) so that it resolves the
# workspace packages; build it with `tsc -b packages/proxy` at the old commit and copy dist.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE=node_modules/.bin/node; D=${D:-5}; R=${R:-6}; BASE=${BASE:?BASE: the dist directory of the build to compare against}
PROXY_CPU=${PROXY_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
# The proxy as a pod runs it: its V8 helpers at SCHED_IDLE (what `v8Helpers: auto` picks in a
# container of its own; on this shared machine auto would pick normal). As every recorded run had it.
export OCTO_PROXY_V8_HELPERS=${OCTO_PROXY_V8_HELPERS:-idle}
W=$(mktemp -d /tmp/octo-ab.XXXXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"' EXIT
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat > "$W/up.conf" <<CONF
worker_processes 1; daemon off; pid $W/up.pid; error_log $W/err.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19080; location / { default_type text/plain; return 200 "$BODY"; } } }
CONF
"$NODE" bench/proxy/octo-bootstrap.mjs 19086 19087 19088 19080 > "$W/a.json"
"$NODE" bench/proxy/octo-bootstrap.mjs 19096 19097 19098 19080 > "$W/b.json"
taskset -c "$LOAD_CPU" nginx -c "$W/up.conf" & PIDS+=($!)
taskset -c "$PROXY_CPU" "$NODE" ${A_FLAGS:-} "$BASE/main.js" --config "$W/a.json" > "$W/a.log" 2>&1 & PIDS+=($!); A=$!
taskset -c "$PROXY_CPU" "$NODE" ${B_FLAGS:-} "${B_ENTRY:-packages/proxy/dist/main.js}" --config "$W/b.json" > "$W/b.log" 2>&1 & PIDS+=($!); B=$!
for p in 19080 19086 19096 19087 19097; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
for p in 19086 19096 19087 19097; do taskset -c "$LOAD_CPU" wrk -t1 -c16 -d2s -H 'Host: bench' "http://127.0.0.1:$p/" >/dev/null; done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pair() { # port-of-A port-of-B -> "A-per-CPU-second B-per-CPU-second B/A"
  local a0 b0 a1 b1 w1 w2 na nb
  a0=$(ticks $A); b0=$(ticks $B)
  taskset -c "$LOAD_CPU" wrk -t1 -c32 -d"${D}s" -H 'Host: bench' "http://127.0.0.1:$1/" > "$W/wa" & w1=$!
  taskset -c "$LOAD_CPU" wrk -t1 -c32 -d"${D}s" -H 'Host: bench' "http://127.0.0.1:$2/" > "$W/wb" & w2=$!
  wait $w1 $w2; a1=$(ticks $A); b1=$(ticks $B)
  na=$(awk '/requests in/{print $1}' "$W/wa"); nb=$(awk '/requests in/{print $1}' "$W/wb")
  awk -v na="$na" -v nb="$nb" -v da=$((a1 - a0)) -v db=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN{a=na/(da/hz); b=nb/(db/hz); printf "%d %d %.3f\n", a, b, b/a}'
}
RH=; RT=
for i in $(seq 1 "$R"); do
  read -r a b r < <(pair 19086 19096); RH="$RH $r"; line="HTTP/1.1 A $a B $b B/A $r"
  if [ -z "${NOTCP:-}" ]; then read -r a b r < <(pair 19087 19097); RT="$RT $r"; line="$line | TCP A $a B $b B/A $r"; fi
  echo "round $i: $line"
done
echo "median B/A: HTTP/1.1 $(echo "$RH" | med)${NOTCP:+}$( [ -z "${NOTCP:-}" ] && echo "  TCP $(echo "$RT" | med)")"
