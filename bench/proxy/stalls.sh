#!/usr/bin/env bash
# What held the proxy's CPU while its requests were slow (a diagnostic, not a benchmark): for each
# target, saturate it for 4 s, then record the scheduler (`perf sched record -k mono`, all CPUs:
# a wake-up is recorded on the waker's CPU) while bench/proxy/fixed-rate.mjs sends RATE requests/s (5 s warm-up, DURATION s
# recorded), and let stalls.mjs attribute every request slower than SLOW µs to what ran then.
#
#   bench/proxy/stalls.sh [nginx] [octo] ...     # default: nginx octo; ROUNDS=1 alternating rounds
#
# HOPS=1 also captures the loopback packets (tcpdump) and splits every request into hops with
# hops.mjs — generator send, proxy in, upstream, proxy out, generator receive — to say on which
# side of the proxy a slow request lost its time.
#
# Needs `perf` (Debian: linux-perf; `tcpdump` for HOPS=1) and root or perf_event_paranoid ≤ 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE="$(pwd)/node_modules/.bin/node"
DURATION=${DURATION:-10}; RATE=${RATE:-1000}; SLOW=${SLOW:-500}; ROUNDS=${ROUNDS:-1}
PROXY_CPU=${PROXY_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
command -v perf >/dev/null || { echo "stalls.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
[ -z "${HOPS:-}" ] || command -v tcpdump >/dev/null || { echo "stalls.sh: HOPS=1 needs tcpdump (apt-get install tcpdump)" >&2; exit 1; }
[ -f packages/proxy/dist/main.js ] || node_modules/.bin/tsc -b packages/proxy
W=$(mktemp -d /tmp/octo-stalls.XXXXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"' EXIT
UP=18180; PORT=18181
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat > "$W/up.conf" <<CONF
worker_processes 1; daemon off; pid $W/up.pid; error_log $W/up.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type text/plain; return 200 "$BODY"; } } }
CONF
cat > "$W/ngx.conf" <<CONF
worker_processes 1; daemon off; pid $W/ngx.pid; error_log $W/ngx.log;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  server { listen 127.0.0.1:$PORT; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
"$NODE" bench/proxy/octo-bootstrap.mjs $PORT $((PORT + 1)) $((PORT + 2)) $UP > "$W/octo.json"
taskset -c "$LOAD_CPU" nginx -c "$W/up.conf" & PIDS+=($!)
wait_port() { for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
wait_port $UP
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(nginx octo)
for round in $(seq 1 "$ROUNDS"); do
  for target in "${TARGETS[@]}"; do
    case "$target" in
      nginx) taskset -c "$PROXY_CPU" nginx -c "$W/ngx.conf" & starter=$!; wait_port $PORT; pid=$(pgrep -P "$starter" | head -1) ;;
      octo) taskset -c "$PROXY_CPU" "$NODE" packages/proxy/dist/main.js --config "$W/octo.json" > "$W/octo.log" 2>&1 & starter=$!; wait_port $PORT; pid=$starter ;;
      *) echo "stalls.sh: unknown target $target (nginx, octo)" >&2; exit 2 ;;
    esac
    PIDS+=("$starter")
    taskset -c "$LOAD_CPU" wrk -t1 -c64 -d4s -H 'Host: bench' "http://127.0.0.1:$PORT/" > /dev/null
    if [ -n "${HOPS:-}" ]; then
      taskset -c "$LOAD_CPU" nice -n 19 tcpdump -i lo -nn -s 400 -B 65536 --time-stamp-precision=nano -w "$W/cap" "tcp port $PORT or tcp port $UP" 2> /dev/null & cap=$!
    fi
    perf sched record -k mono -a -o "$W/sched" -- sleep $((DURATION + 7)) > /dev/null 2>&1 & rec=$!
    sleep 0.5
    TAG=${HOPS:+1} LAT_FILE="$W/lat" WARMUP=5 taskset -c "$LOAD_CPU" nice -n 19 "$NODE" bench/proxy/fixed-rate.mjs $PORT "$RATE" "$DURATION" bench 32 > /dev/null
    wait $rec
    perf sched timehist --state -i "$W/sched" > "$W/timehist" 2> /dev/null
    echo "round $round $target: $("$NODE" bench/proxy/stalls.mjs "$W/timehist" "$W/lat" "$pid" "$SLOW" "$PROXY_CPU")"
    if [ -n "${HOPS:-}" ]; then
      kill -INT "$cap"; wait "$cap" 2>/dev/null || true
      tcpdump -r "$W/cap" -nn -tt --time-stamp-precision=nano -A 2> /dev/null > "$W/cap.txt"
      "$NODE" bench/proxy/hops.mjs "$W/cap.txt" "$W/lat" $PORT $UP "$SLOW" | sed 's/^/  /'
    fi
    kill "$starter"; wait "$starter" 2>/dev/null || true
    for _ in $(seq 1 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break; sleep 0.1; done
  done
done
