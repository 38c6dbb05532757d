#!/usr/bin/env bash
# Proxy benchmark (not a test): direct vs nginx vs HAProxy vs a plain node:http proxy vs
# octo-proxy, on loopback, one run, same machine, same pinning. Prints a table and ratios.
#
#   bench/proxy/run.sh            # DURATION=10 s per measurement, ROUNDS=3 interleaved rounds (throughput and latency)
#   OCTO_BASELINE=/tmp/base/packages/proxy/dist/main.js bench/proxy/run.sh
#                                 # also measures a second octo-proxy build ("octo-base", e.g. the commit
#                                 # before a change) in the same rounds, and prints octo / octo-base
#   OCTO_MAIN=…/dist/main.js      # the octo-proxy build to measure (default packages/proxy/dist/main.js)
#
# Latency at RATE req/s: each round gives every target LAT_WARMUP s (default 5) at the rate before
# it records DURATION s. The warm-up matters for octo: after the saturation rounds V8 re-optimises
# the proxy's functions for the quiet load over several seconds (--trace-opt: ~35 compilations in
# the first second, a trickle for ~20 s), and those compile jobs share the proxy's core. p50 and
# p99 are taken over every recorded request of all rounds pooled (ROUNDS × DURATION × RATE): a
# single 10 s round's p99 rests on its slowest ~100 requests, and this machine's stalls move it by
# 2× from round to round.
#
# Pinning: every proxy gets exactly one worker on core $PROXY_CPU; the upstream and the load
# generators share core $LOAD_CPU. Upstream: nginx returning a fixed 1 KB body.
# Throughput per core is also measured as requests per CPU-second consumed by the proxy's own
# processes (from /proc), which stays meaningful when other work shares the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
NODE="$ROOT/node_modules/.bin/node"
DURATION=${DURATION:-10}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
RATE=${RATE:-1000}
LAT_WARMUP=${LAT_WARMUP:-5}
OCTO_MAIN=${OCTO_MAIN:-packages/proxy/dist/main.js}
OCTO_BASELINE=${OCTO_BASELINE:-}
# The proxy as a pod runs it: its V8 helpers at SCHED_IDLE (what `v8Helpers: auto` picks in a
# container of its own; on this shared machine auto would pick normal). As every recorded run had it.
export OCTO_PROXY_V8_HELPERS=${OCTO_PROXY_V8_HELPERS:-idle}
WORK=$(mktemp -d /tmp/octo-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need h2load || ! need nginx || ! need haproxy; then
  echo "installing wrk, nghttp2-client (h2load), nginx, haproxy via apt-get" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  $sudo_cmd apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q wrk nghttp2-client nginx haproxy >/dev/null
fi
[ -f packages/proxy/dist/main.js ] || [ "$OCTO_MAIN" != packages/proxy/dist/main.js ] || node_modules/.bin/tsc -b packages/proxy

UP=18080; NGX=18081; NGX2=18082; HAP=18083; HAP2=18084; PLAIN=18085; OCTO=18086; OCTO_TCP=18087; OCTO_ADMIN=18088
OCTO_B=18089; OCTO_B_TCP=18090; OCTO_B_ADMIN=18091
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

mkdir -p "$WORK/up" "$WORK/ngx"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/up/nginx.pid; error_log $WORK/up/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type text/plain; return 200 "$BODY"; } } }
CONF
cat > "$WORK/ngx/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/ngx/nginx.pid; error_log $WORK/ngx/error.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  server { listen 127.0.0.1:$NGX; listen 127.0.0.1:$NGX2 http2;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAP
  bind 127.0.0.1:$HAP2 proto h2
  default_backend be
backend be
  server s1 127.0.0.1:$UP
CONF
"$NODE" bench/proxy/octo-bootstrap.mjs $OCTO $OCTO_TCP $OCTO_ADMIN $UP > "$WORK/octo.json"
[ -n "$OCTO_BASELINE" ] && "$NODE" bench/proxy/octo-bootstrap.mjs $OCTO_B $OCTO_B_TCP $OCTO_B_ADMIN $UP > "$WORK/octo-base.json"

declare -A PID
taskset -c "$LOAD_CPU" nginx -c "$WORK/up/nginx.conf" & PIDS+=($!); PID[direct]=$!
taskset -c "$PROXY_CPU" nginx -c "$WORK/ngx/nginx.conf" & PIDS+=($!); PID[nginx]=$!
taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg" -q & PIDS+=($!); PID[haproxy]=$!
taskset -c "$PROXY_CPU" "$NODE" bench/proxy/plain-node-proxy.mjs $PLAIN $UP & PIDS+=($!); PID[node-plain]=$!
taskset -c "$PROXY_CPU" "$NODE" "$OCTO_MAIN" --config "$WORK/octo.json" > "$WORK/octo.log" 2>&1 & PIDS+=($!); PID[octo]=$!
WAIT_PORTS="$UP $NGX $HAP $PLAIN $OCTO $OCTO_TCP"
if [ -n "$OCTO_BASELINE" ]; then
  taskset -c "$PROXY_CPU" "$NODE" "$OCTO_BASELINE" --config "$WORK/octo-base.json" > "$WORK/octo-base.log" 2>&1 & PIDS+=($!); PID[octo-base]=$!
  WAIT_PORTS="$WAIT_PORTS $OCTO_B $OCTO_B_TCP"
fi
for p in $WAIT_PORTS; do
  for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
curl -sf -H 'host: bench' "http://127.0.0.1:$OCTO/" -o /dev/null || { echo "octo-proxy does not answer"; cat "$WORK/octo.log"; exit 1; }
[ -z "$OCTO_BASELINE" ] || curl -sf -H 'host: bench' "http://127.0.0.1:$OCTO_B/" -o /dev/null || { echo "the baseline octo-proxy does not answer"; cat "$WORK/octo-base.log"; exit 1; }

cpu_ticks() { # pid -> CPU ticks (user+system) of the process and its children (nginx workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$total"
}
wrk_rps() { # port [pid] -> "requests/s requests-per-CPU-second-of-pid" at saturation (HTTP/1.1, 1 thread, 64 connections)
  local t0 t1 out
  t0=$( [ -n "${2:-}" ] && cpu_ticks "$2" || echo 0 )
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${DURATION}s" -H 'Host: bench' "http://127.0.0.1:$1/")
  t1=$( [ -n "${2:-}" ] && cpu_ticks "$2" || echo 0 )
  echo "$out" | awk -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n=$1} /Requests\/sec/ {r=int($2)}
    END { if (t1 > t0) printf "%d %d\n", r, n / ((t1 - t0) / hz); else printf "%d -\n", r }'
}
h2_rps() { # port -> requests/s (HTTP/2 prior knowledge, 8 connections × 16 streams)
  taskset -c "$LOAD_CPU" h2load -D "$DURATION" -c8 -m16 -t1 -H 'host: bench' "http://127.0.0.1:$1/" 2>/dev/null | awk '/^finished in/ {gsub(",","",$4); print int($4)}'
}
fixed() { # port latency-file -> "p50 p99 errors" (microseconds) at $RATE req/s; the latencies go to the file
  # nice 19: the generator spins between sends; on the upstream's CPU it must yield at once when
  # the upstream wakes up, or the scheduler's preemption delay (ms) shows up in every tail.
  LAT_FILE="$2" WARMUP="$LAT_WARMUP" taskset -c "$LOAD_CPU" nice -n 19 "$NODE" bench/proxy/fixed-rate.mjs "$1" "$RATE" "$DURATION" bench 32 |
    "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.p50_us,j.p99_us,j.errors)})'
}

# Warm every target up (JIT, pools).
for p in $UP $NGX $HAP $PLAIN $OCTO ${OCTO_BASELINE:+$OCTO_B}; do taskset -c "$LOAD_CPU" wrk -t1 -c16 -d2s -H 'Host: bench' "http://127.0.0.1:$p/" >/dev/null; done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Throughput: ROUNDS rounds, targets interleaved within each round, median per target — other
# load on the machine then hits every target alike.
ROUNDS=${ROUNDS:-3}
declare -A H1 PERCPU H2 P50 P99 H1S PERCPUS
TARGETS="direct:$UP nginx:$NGX haproxy:$HAP node-plain:$PLAIN octo:$OCTO${OCTO_BASELINE:+ octo-base:$OCTO_B}"
# With a baseline, the two octo builds swap places every other round (neither always follows the other).
round_targets() { if [ -n "$OCTO_BASELINE" ] && [ $(($1 % 2)) -eq 0 ]; then echo "direct:$UP nginx:$NGX haproxy:$HAP node-plain:$PLAIN octo-base:$OCTO_B octo:$OCTO"; else echo "$TARGETS"; fi; }
for round in $(seq 1 "$ROUNDS"); do
  for t in $(round_targets "$round"); do
    name=${t%%:*}; port=${t##*:}
    read -r r c < <(wrk_rps "$port" "${PID[$name]}")
    H1S[$name]="${H1S[$name]:-} $r"; PERCPUS[$name]="${PERCPUS[$name]:-} $c"
    echo "round $round $name: $r rps, $c per CPU-second" >&2
  done
done
# Latency at a fixed rate: also ROUNDS interleaved rounds; p50 and p99 over all rounds' requests.
declare -A P99S
for round in $(seq 1 "$ROUNDS"); do
  for t in $(round_targets "$round"); do
    name=${t%%:*}; port=${t##*:}
    read -r a b e < <(fixed "$port" "$WORK/lat-$name-$round")
    P99S[$name]="${P99S[$name]:-} $b"
    echo "round $round $name: p50 ${a}us p99 ${b}us at $RATE rps (errors $e)" >&2
  done
done
for t in $TARGETS; do
  name=${t%%:*}
  H1[$name]=$(echo "${H1S[$name]}" | median); PERCPU[$name]=$(echo "${PERCPUS[$name]}" | median)
  read -r a b n < <("$NODE" bench/proxy/percentiles.mjs "$WORK"/lat-"$name"-[0-9]*)
  P50[$name]=$a; P99[$name]=$b
  echo "measured $name: h1 ${H1[$name]} rps (${PERCPU[$name]} per CPU-second, medians of $ROUNDS), p50 ${a}us p99 ${b}us over $n requests (per-round p99:${P99S[$name]})" >&2
done
H2[nginx]=$(h2_rps $NGX2); H2[haproxy]=$(h2_rps $HAP2); H2[octo]=$(h2_rps $OCTO)
[ -n "$OCTO_BASELINE" ] && H2[octo-base]=$(h2_rps $OCTO_B)
read -r TCP_DIRECT _ < <(wrk_rps $UP)
read -r TCP_OCTO TCP_OCTO_CPU < <(wrk_rps $OCTO_TCP "${PID[octo]}")
[ -n "$OCTO_BASELINE" ] && read -r TCP_BASE TCP_BASE_CPU < <(wrk_rps $OCTO_B_TCP "${PID[octo-base]}")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", a - b }'; }

echo
echo "## Results ($(date -u +%F), $(nproc) cores, ${DURATION}s per measurement, throughput medians of $ROUNDS interleaved rounds, latency percentiles over all $ROUNDS rounds' requests after ${LAT_WARMUP}s warm-up each, proxy on CPU $PROXY_CPU, load+upstream on CPU $LOAD_CPU, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| target | HTTP/1.1 rps (wall) | HTTP/1.1 requests per CPU-second | HTTP/2 rps | p50 µs @${RATE}rps | p99 µs @${RATE}rps | added p50 µs | added p99 µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for name in direct nginx haproxy node-plain octo ${OCTO_BASELINE:+octo-base}; do
  echo "| $name | ${H1[$name]} | ${PERCPU[$name]} | ${H2[$name]:-—} | ${P50[$name]} | ${P99[$name]} | $(added "${P50[$name]}" "${P50[direct]}") | $(added "${P99[$name]}" "${P99[direct]}") |"
done
echo
echo "| ratio | value | goal |"
echo "| --- | ---: | --- |"
echo "| octo / nginx, HTTP/1.1 requests per CPU-second | $(ratio "${PERCPU[octo]}" "${PERCPU[nginx]}") | ≥ 0.50 |"
echo "| octo / node-plain, HTTP/1.1 requests per CPU-second | $(ratio "${PERCPU[octo]}" "${PERCPU[node-plain]}") | ≥ 2.00 |"
echo "| octo / nginx, HTTP/1.1 wall rps | $(ratio "${H1[octo]}" "${H1[nginx]}") | — |"
echo "| octo / nginx, HTTP/2 throughput per core | $(ratio "${H2[octo]}" "${H2[nginx]}") | — |"
echo "| octo added p50 (µs) | $(added "${P50[octo]}" "${P50[direct]}") | ≤ 100 |"
echo "| octo added p99 / nginx added p99 | $(ratio "$(added "${P99[octo]}" "${P99[direct]}")" "$(added "${P99[nginx]}" "${P99[direct]}")") | ≤ 2.00 |"
echo "| octo added p50 / node-plain added p50 | $(ratio "$(added "${P50[octo]}" "${P50[direct]}")" "$(added "${P50[node-plain]}" "${P50[direct]}")") | — |"
echo "| octo TCP mode / direct throughput | $(ratio "$TCP_OCTO" "$TCP_DIRECT") | ≥ 0.80 |"
echo "| octo TCP mode requests per proxy CPU-second | $TCP_OCTO_CPU | — |"
echo
echo "p99 µs of each round on its own (the table pools them): direct${P99S[direct]}; nginx${P99S[nginx]}; octo${P99S[octo]}${OCTO_BASELINE:+; octo-base${P99S[octo-base]}}"
if [ -n "$OCTO_BASELINE" ]; then
  echo
  echo "| octo / octo-base (same rounds) | value |"
  echo "| --- | ---: |"
  echo "| HTTP/1.1 requests per CPU-second | $(ratio "${PERCPU[octo]}" "${PERCPU[octo-base]}") |"
  echo "| HTTP/1.1 wall rps | $(ratio "${H1[octo]}" "${H1[octo-base]}") |"
  echo "| HTTP/2 rps | $(ratio "${H2[octo]}" "${H2[octo-base]}") |"
  echo "| added p50 | $(ratio "$(added "${P50[octo]}" "${P50[direct]}")" "$(added "${P50[octo-base]}" "${P50[direct]}")") |"
  echo "| added p99 | $(ratio "$(added "${P99[octo]}" "${P99[direct]}")" "$(added "${P99[octo-base]}" "${P99[direct]}")") |"
  echo "| TCP mode wall rps | $(ratio "$TCP_OCTO" "$TCP_BASE") |"
  echo "| TCP mode requests per proxy CPU-second | $(ratio "$TCP_OCTO_CPU" "$TCP_BASE_CPU") |"
  echo "per-round HTTP/1.1 requests per CPU-second: octo${PERCPUS[octo]}; octo-base${PERCPUS[octo-base]}"
fi
