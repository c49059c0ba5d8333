#!/usr/bin/env bash
# DNS bench, run by hand (never by the test suite): dnsperf against keelson and, in the same run,
# against Knot DNS (cluster names, same records from a zone file) and Unbound (external names, warm
# cache from a local upstream). Servers under test are pinned to one core (taskset -c 1), dnsperf
# and the upstream to another (taskset -c 0). Everything listens on 127.0.70.x:5300.
# keelson and the native server are measured in alternating rounds (ROUNDS, default 5) so that both
# see the same background load; the load average is printed with the figures.
# Usage: [ROUNDS=5] [KEELSON_NODE_FLAGS=...(default: scripts/node-flags)] bench/dns/run.sh [SERVICES=5000] [SECONDS=10]
set -euo pipefail
echo "start: $(uptime)"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SERVICES=${1:-5000}
SECS=${2:-10}
ROUNDS=${ROUNDS:-5}
for cmd in dnsperf knotd unbound taskset dig; do command -v "$cmd" >/dev/null || { echo "missing $cmd" >&2; exit 1; }; done
node_bin=$(scripts/node-runtime.sh)
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json >/dev/null || true
# The V8 flags every keelson launcher uses (scripts/node-flags), unless KEELSON_NODE_FLAGS is set.
node_flags=${KEELSON_NODE_FLAGS-$(cat scripts/node-flags 2>/dev/null || true)}
dir=$(mktemp -d /tmp/keelson-dnsbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
"$node_bin" dist/bench/dns/gen.js "$dir" "$SERVICES"

taskset -c 0 knotd -c "$dir/upstream.conf" >"$dir/upstream.log" 2>&1 & pids+=($!)
taskset -c 1 knotd -c "$dir/knot.conf" >"$dir/knot.log" 2>&1 & pids+=($!)
taskset -c 1 unbound -d -c "$dir/unbound.conf" >"$dir/unbound.log" 2>&1 & pids+=($!)
taskset -c 1 "$node_bin" $node_flags dist/bench/dns/server.js --listen 127.0.70.1 --port 5300 --services "$SERVICES" --upstream 127.0.70.3:5300 >"$dir/keelson.log" 2>&1 & keelson=$!; pids+=($keelson)

wait_for() { for _ in $(seq 100); do dig +tries=1 +time=1 -p 5300 "@$1" "$2" A +short 2>/dev/null | grep -q . && return 0; sleep 0.2; done; echo "$1 did not answer $2" >&2; exit 1; }
wait_for 127.0.70.3 host-1.ext.bench
wait_for 127.0.70.2 svc-0.ns-0.svc.cluster.local
wait_for 127.0.70.1 svc-0.ns-0.svc.cluster.local
wait_for 127.0.70.4 host-1.ext.bench

perf() { taskset -c 0 dnsperf -s "$1" -p 5300 -d "$2" "${@:3}" 2>&1; }
qps() { perf "$1" "$2" -l "$3" -c 10 -q 300 | awk '/Queries per second/ {print $4}'; }
# Max qps, keelson and the native server in alternating rounds (SECS in total each), averaged.
qps_pair() { # keelson-addr other-addr queries → "keelson-qps other-qps"
  local k=0 o=0 secs=$(( SECS / ROUNDS > 0 ? SECS / ROUNDS : 1 ))
  for _ in $(seq "$ROUNDS"); do
    k=$(awk -v a="$k" -v b="$(qps "$1" "$3" "$secs")" 'BEGIN {print a + b}')
    o=$(awk -v a="$o" -v b="$(qps "$2" "$3" "$secs")" 'BEGIN {print a + b}')
  done
  awk -v k="$k" -v o="$o" -v r="$ROUNDS" 'BEGIN {printf "%.0f %.0f\n", k / r, o / r}'
}
# p99 at 10k qps: keelson and the native server are measured in alternating 2-second rounds, so both
# see the same share of whatever else the machine is doing (a shared box has bursts of load).
latencies() { perf "$1" "$2" -l 2 -c 10 -q 300 -Q 10000 -v | awk '/^> / {print $NF; if ($2 != "NOERROR") bad++} END {if (bad) print "bad", bad > "/dev/stderr"}'; }
pct() { sort -g "$1" | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; j=int(NR*0.5); if (j<1) j=1; printf "p99 %.3f ms, p50 %.3f ms, max %.3f ms (n=%d)\n", a[i]*1000, a[j]*1000, a[NR]*1000, NR}'; }
p99_pair() { # keelson-addr other-addr queries label-other
  : >"$dir/lat-k"; : >"$dir/lat-o"
  for _ in $(seq "$ROUNDS"); do latencies "$1" "$3" >>"$dir/lat-k"; latencies "$2" "$3" >>"$dir/lat-o"; done
  echo "keelson $5: $(pct "$dir/lat-k")"
  echo "$4 $5: $(pct "$dir/lat-o")"
}

# warm the caches of unbound and keelson with the external names
perf 127.0.70.4 "$dir/q-external.txt" -n 2 >/dev/null
perf 127.0.70.1 "$dir/q-external.txt" -n 2 >/dev/null

echo "== (a) cluster names ($SERVICES services), max qps, ${ROUNDS} alternating rounds, ${SECS}s in total each; $(uptime | sed 's/.*load/load/')"
read -r keel_a knot_qps < <(qps_pair 127.0.70.1 127.0.70.2 "$dir/q-cluster.txt")
echo "knot    qps=$knot_qps"
echo "keelson qps=$keel_a  ratio=$(awk -v a="$keel_a" -v b="$knot_qps" 'BEGIN {printf "%.2f", a/b}') (target >= 0.45)"
echo "== (b) cached external names, max qps; $(uptime | sed 's/.*load/load/')"
read -r keel_b unb_qps < <(qps_pair 127.0.70.1 127.0.70.4 "$dir/q-external.txt")
echo "unbound qps=$unb_qps"
echo "keelson qps=$keel_b  ratio=$(awk -v a="$keel_b" -v b="$unb_qps" 'BEGIN {printf "%.2f", a/b}') (target >= 0.35)"
echo "== p99 latency at 10k qps (target <= 5 ms), ${ROUNDS} alternating rounds of 2 s each; $(uptime | sed 's/.*load/load/')"
kill -USR2 "$keelson"; sleep 0.2 # resets the GC / event-loop counters
p99_pair 127.0.70.1 127.0.70.2 "$dir/q-cluster.txt" "knot   " cluster
kill -USR2 "$keelson"; sleep 0.2
echo "keelson during the cluster p99 rounds (GC pauses vs event-loop delay): $(tail -1 "$dir/keelson.log")"
p99_pair 127.0.70.1 127.0.70.4 "$dir/q-external.txt" "unbound" external
echo "== RSS of the DNS-only keelson ($SERVICES services; target <= 55 MB), node flags: $node_flags"
head -1 "$dir/keelson.log"
kill -USR2 "$keelson"; sleep 0.5
tail -1 "$dir/keelson.log"
