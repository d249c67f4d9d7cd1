#!/usr/bin/env bash
# Indexer benchmark: 1,000,000 agent-envelope nginx access events already in the release `logpipe broker`,
# consumed, parsed (nginx_access), routed (daily index) and bulk-encoded by the release `logpipe indexer`,
# with an Elasticsearch stand-in that accepts every `_bulk` request at once (indexer/examples/bench_sink.rs).
#
#   scripts/bench-indexer.sh                     1,000,000 events over 3 partitions
#   scripts/bench-indexer.sh --records 200000    a quicker run
#
# Options: --records N, --partitions N, --batch-events N (indexer batch_max_events, default 5000),
#          --concurrency N (bulk requests in flight, default 2), --keep (keep the run directory), --no-build.
# Environment: BENCH_TMP (default: target/bench-tmp), CARGO_TARGET_DIR.
#
# Loading (not timed as part of the indexer): indexer/examples/bench_events.rs produces the envelopes with
# librdkafka (acks=all, lz4, linger 20 ms, 10,000 per batch) and writes the same values to a file.
# Prints, for the indexer: events/s and MiB/s (record value bytes), from the indexer's start until the
# stand-in has seen every document, so it includes joining the group; CPU seconds per million events
# (utime+stime from /proc/PID/stat) and peak RSS (VmHWM), read just before SIGTERM; the indexer's busiest
# thread (the one that polls, decodes, filters, routes and encodes) and what the broker and the stand-in
# spent over the same time.
# Baseline in the same run (indexer/examples/json_baseline.rs, one thread, values in memory):
# serde_json::from_slice::<Value> of the same values, serde_json::to_vec of them, and the ratio
# indexer/serde_json, by throughput and by CPU time per event; also the indexer's core
# (Processor::process) on the same values without Kafka or HTTP, with its time per stage. The baseline
# runs on the system allocator, not jemalloc as the logpipe binary does (with jemalloc preloaded the parse
# figure stayed the same and Processor::process took about 7% less CPU).
#
# Everything runs on this machine: the broker serving fetches and the stand-in compete with the indexer
# for CPU, and so does anything else running. The header shows the load average before the run; when it
# is high, trust the CPU figures (per event, per record) more than the rates.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

RECORDS=1000000
PARTITIONS=3
BATCH_EVENTS=5000
CONCURRENCY=2
KEEP=0
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --records) RECORDS=$2; shift 2 ;;
        --partitions) PARTITIONS=$2; shift 2 ;;
        --batch-events) BATCH_EVENTS=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH_TMP="${BENCH_TMP:-$TARGET_DIR/bench-tmp}"
RUN_DIR="$BENCH_TMP/indexer-run-$$"
BIN="$TARGET_DIR/release/logpipe"
EXAMPLES="$TARGET_DIR/release/examples"
CLK_TCK=$(getconf CLK_TCK)
PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 0 ]; then rm -rf "$RUN_DIR"; else log "kept $RUN_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe; bench_events, bench_sink, json_baseline)"
    cargo build --release -p logpipe --bin logpipe
    cargo build --release -p logpipe-indexer --example bench_events --example bench_sink --example json_baseline
fi
for exe in "$BIN" "$EXAMPLES/bench_events" "$EXAMPLES/bench_sink" "$EXAMPLES/json_baseline"; do
    [ -x "$exe" ] || die "$exe missing (drop --no-build)"
done

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

now() { date +%s.%N; }
# utime + stime in clock ticks; the command name, in parentheses, is cut off first (it may hold spaces).
cpu_ticks() { sed 's/^.*) //' "$1" | awk '{print $12 + $13}'; }
ticks_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }
# kv "RESULT ... key=value ..." key
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# wait_line FILE REGEX PID WHAT: the first line of FILE matching REGEX, waiting up to 30 s while PID lives.
wait_line() {
    local line
    for _ in $(seq 1 300); do
        if line=$(grep -m1 "$2" "$1" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || die "$4 exited during startup: $(tail -5 "${1%.out}.err" 2>/dev/null)"
        sleep 0.1
    done
    die "$4 printed no '$2' line in 30 s"
}

mkdir -p "$RUN_DIR/broker"

# ---------------------------------------------------------------------------------------------
# Broker, topic and the events in it

cat >"$RUN_DIR/broker.toml" <<EOF
[broker]
listeners = ["127.0.0.1:0"]
log_dirs = "$RUN_DIR/broker"
num_partitions = $PARTITIONS
group_initial_rebalance_delay_ms = 0
EOF
"$BIN" broker -c "$RUN_DIR/broker.toml" >"$RUN_DIR/broker.out" 2>"$RUN_DIR/broker.err" &
BROKER_PID=$!
PIDS+=($BROKER_PID)
BOOT=$(wait_line "$RUN_DIR/broker.out" '^listening on ' "$BROKER_PID" broker)
BOOT=${BOOT#listening on }
log "broker pid $BROKER_PID on $BOOT"

"$BIN" topics create nginx --partitions "$PARTITIONS" --bootstrap-server "$BOOT" >&2
VALUES="$RUN_DIR/values.ndjson"
log "loading $RECORDS events into nginx (bench_events; not timed as part of the indexer)"
out=$("$EXAMPLES/bench_events" --bootstrap "$BOOT" --topic nginx --records "$RECORDS" --out "$VALUES") \
    || { printf '%s\n' "$out" >&2; die "loading failed"; }
printf '%s\n' "$out" | sed '/^RESULT/d; s/^/    /' >&2
LOAD=$(printf '%s\n' "$out" | sed -n '/^RESULT/{p;q}')
BYTES=$(kv "$LOAD" bytes)
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')

# ---------------------------------------------------------------------------------------------
# The Elasticsearch stand-in

"$EXAMPLES/bench_sink" --expect "$RECORDS" >"$RUN_DIR/sink.out" 2>"$RUN_DIR/sink.err" &
SINK_PID=$!
PIDS+=($SINK_PID)
SINK=$(wait_line "$RUN_DIR/sink.out" '^listening on ' "$SINK_PID" "the stand-in")
SINK=${SINK#listening on }
log "stand-in pid $SINK_PID on $SINK"

# ---------------------------------------------------------------------------------------------
# The indexer

cat >"$RUN_DIR/indexer.toml" <<EOF
[indexer.input]
brokers = ["$BOOT"]
topics = ["nginx"]
group_id = "bench-indexer-$$"
auto_offset_reset = "earliest"
codec = "json"

[[indexer.filters]]
type = "nginx_access"
when = { tag = "access" }

[[indexer.routes]]
when = { tag = "access" }
index = "nginx_access-%{+YYYY.MM.dd}"

[indexer.output.elasticsearch]
hosts = ["http://$SINK"]
batch_max_events = $BATCH_EVENTS
concurrency = $CONCURRENCY
EOF

log "indexer: batch_max_events=$BATCH_EVENTS, concurrency=$CONCURRENCY"
BROKER_T0=$(cpu_ticks "/proc/$BROKER_PID/stat")
T0=$(now)
"$BIN" indexer -c "$RUN_DIR/indexer.toml" >"$RUN_DIR/indexer.out" 2>"$RUN_DIR/indexer.err" &
INDEXER_PID=$!
PIDS+=($INDEXER_PID)
REACHED=""
DEADLINE=$(( $(date +%s) + 600 ))
while :; do
    if REACHED=$(grep -m1 '^reached ' "$RUN_DIR/sink.out" 2>/dev/null); then break; fi
    kill -0 "$INDEXER_PID" 2>/dev/null || die "the indexer exited: $(tail -5 "$RUN_DIR/indexer.err")"
    [ "$(date +%s)" -lt "$DEADLINE" ] \
        || die "the stand-in saw fewer than $RECORDS documents in 600 s: $(grep '^progress' "$RUN_DIR/sink.out" | tail -1)"
    sleep 0.05
done
# CPU and VmHWM before SIGTERM; the busiest thread as "ticks name".
CPU_S=$(ticks_s "$(cpu_ticks "/proc/$INDEXER_PID/stat")")
HWM_MIB=$(awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$INDEXER_PID/status")
BUSIEST=$(for t in "/proc/$INDEXER_PID"/task/*; do
    printf '%s %s\n' "$(cpu_ticks "$t/stat" 2>/dev/null || echo 0)" "$(cat "$t/comm" 2>/dev/null)"
done | sort -rn | head -1)
BROKER_CPU_S=$(ticks_s $(( $(cpu_ticks "/proc/$BROKER_PID/stat") - BROKER_T0 )))
SINK_CPU_S=$(ticks_s "$(cpu_ticks "/proc/$SINK_PID/stat")")
kill -TERM "$INDEXER_PID" 2>/dev/null || true
wait "$INDEXER_PID" 2>/dev/null || true

DOCS=$(kv "$REACHED" docs)
[ "$DOCS" -eq "$RECORDS" ] || log "warning: the stand-in counted $DOCS documents for $RECORDS events"
INDEXER_S=$(awk -v a="$T0" -v b="$(kv "$REACHED" reached_unix)" 'BEGIN { print b - a }')
STEADY_S=$(awk -v a="$(kv "$REACHED" first_request_unix)" -v b="$(kv "$REACHED" reached_unix)" 'BEGIN { print b - a }')
INDEXER_RPS=$(awk -v n="$RECORDS" -v s="$INDEXER_S" 'BEGIN { printf "%.0f", n / s }')

# ---------------------------------------------------------------------------------------------
# serde_json baseline and the indexer's core, on the same values

log "json_baseline on $VALUES"
out=$("$EXAMPLES/json_baseline" --file "$VALUES" --config "$RUN_DIR/indexer.toml" --partitions "$PARTITIONS") \
    || { printf '%s\n' "$out" >&2; die "json_baseline failed"; }
printf '%s\n' "$out" | sed '/^RESULT/d; s/^/    /' >&2
BASE=$(printf '%s\n' "$out" | sed -n '/^RESULT/{p;q}')

# ---------------------------------------------------------------------------------------------
# Report

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
mibs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
echo
echo "indexer benchmark: $RECORDS agent-envelope nginx access events, $MIB MiB of record values ($((BYTES / RECORDS)) B average)," \
    "$PARTITIONS partitions, release build ($(nproc) CPUs, load average before the run $LOADAVG)"
printf '  indexer (consume, nginx_access, route, _bulk):  %s events/s, %s MiB/s, %.1f s; CPU %.2f s per million events; peak RSS %s MiB\n' \
    "$INDEXER_RPS" "$(mibs "$BYTES" "$INDEXER_S")" "$INDEXER_S" \
    "$(awk -v c="$CPU_S" -v n="$RECORDS" 'BEGIN { print c / (n / 1e6) }')" "$HWM_MIB"
printf '    from the first _bulk request: %s events/s; %s requests, %s MiB of bulk bodies; batch_max_events=%s, concurrency=%s\n' \
    "$(rate "$RECORDS" "$STEADY_S")" "$(kv "$REACHED" requests)" "$(mibs "$(kv "$REACHED" bytes)" 1)" "$BATCH_EVENTS" "$CONCURRENCY"
printf '    busiest indexer thread: %s, %s of %s CPU s; over the same time the broker used %s CPU s, the stand-in %s CPU s\n' \
    "${BUSIEST#* }" "$(ticks_s "${BUSIEST%% *}")" "$CPU_S" "$BROKER_CPU_S" "$SINK_CPU_S"
INDEXER_CPU_US=$(awk -v c="$CPU_S" -v n="$RECORDS" 'BEGIN { printf "%.2f", c * 1e6 / n }')
printf '  serde_json::from_slice::<Value> (1 thread):     %s records/s, %s MiB/s, %s CPU us/record\n' \
    "$(kv "$BASE" parse_rps)" "$(kv "$BASE" parse_mibs)" "$(kv "$BASE" parse_cpu_us)"
printf '  indexer/serde_json: %.2f by throughput (events/s over records/s); %.2f by CPU (parse CPU per record over indexer CPU per event, %s us)\n' \
    "$(awk -v a="$INDEXER_RPS" -v b="$(kv "$BASE" parse_rps)" 'BEGIN { print a / b }')" \
    "$(awk -v p="$(kv "$BASE" parse_cpu_us)" -v i="$INDEXER_CPU_US" 'BEGIN { print p / i }')" "$INDEXER_CPU_US"
printf '  serde_json::to_vec(&Value) (1 thread):          %s records/s, %s MiB/s of output, %s CPU us/record\n' \
    "$(kv "$BASE" to_vec_rps)" "$(kv "$BASE" to_vec_mibs)" "$(kv "$BASE" to_vec_cpu_us)"
printf '  indexer core, Processor::process (1 thread):    %s records/s, %s MiB/s, %s CPU us/record;\n' \
    "$(kv "$BASE" core_rps)" "$(kv "$BASE" core_mibs)" "$(kv "$BASE" core_cpu_us)"
printf '    CPU ns/record by stage (each with its frees): decode %s, filters %s, route %s, doc id + bulk encode %s\n' \
    "$(kv "$BASE" decode_ns)" "$(kv "$BASE" filters_ns)" "$(kv "$BASE" route_ns)" "$(kv "$BASE" encode_ns)"
