#!/usr/bin/env bash
# Broker benchmark: release build of `logpipe broker`, driven by console/examples/broker_load.rs
# (librdkafka through the rdkafka crate) and by Kafka's own kafka-producer-perf-test and
# kafka-consumer-perf-test, side by side with a single-node Apache Kafka 4.4 (KRaft, from .peers/kafka)
# on the same disk under the same load, and against what the disk itself does with dd.
#
#   scripts/bench-broker.sh                     1,000,000 x 200 B records over 3 partitions
#   scripts/bench-broker.sh --records 200000    a quicker run
#   scripts/bench-broker.sh --group             also: a 2-member consumer group and 10 rebalances
#   scripts/bench-broker.sh --no-kafka          logpipe only
#   scripts/bench-broker.sh --consume-runs 5    kafka-consumer-perf-test 5 times per broker, the median run
#                                               (default 3: one run of a few seconds is mostly noise here)
#   scripts/bench-broker.sh --side-only         only the side-by-side run against Apache Kafka (no logpipe-only
#                                               phases, no dd)
#   scripts/bench-broker.sh --security          also: acks=all produce through PLAINTEXT, SSL and SASL_SSL
#                                               (SCRAM-SHA-512) listeners, ratios to PLAINTEXT, and 5 producers
#                                               while 50 clients authenticate (scripts/bench-security.sh)
#
# Options: --records N, --record-size BYTES, --partitions N, --group, --rebalances N, --no-kafka, --side-only,
#          --consume-runs N, --security,
#          --keep (keep the data dir), --no-build.
# Environment: BENCH_TMP (default: target/bench-tmp, i.e. the repo's disk), CARGO_TARGET_DIR.
#
# Phases: produce with acks=all, consume it back, produce with acks=1 (fresh topic), consume it back,
# [group]. For each: records/s and MB/s as the client saw them, produce latency p50/p99, broker CPU
# seconds per million records (utime+stime from /proc/PID/stat) and the broker's peak RSS (VmHWM).
# Finally dd writes the same number of MB with conv=fdatasync to the same directory.
#
# The side-by-side part (scripts/bench-kafka.sh) runs each broker alone (logpipe is stopped before
# Kafka starts), produces with acks=all and consumes back with both load tools, and prints
# logpipe/Kafka ratios of records/s, broker CPU seconds per million records and peak RSS. Kafka runs
# with its defaults (1 GiB heap as kafka-server-start.sh sets it; no fsync: flushing is left to the
# OS), logpipe with its own (fsync before acknowledging acks=all).
#
# The load generator runs on the same machine and competes with the broker for CPU; on a small
# machine read the figures as a lower bound.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

RECORDS=1000000
SIZE=200
PARTITIONS=3
GROUP=0
REBALANCES=10
KEEP=0
BUILD=1
KAFKA=1
SOLO=1
CONSUME_RUNS=3
SECURITY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --records) RECORDS=$2; shift 2 ;;
        --record-size) SIZE=$2; shift 2 ;;
        --partitions) PARTITIONS=$2; shift 2 ;;
        --group) GROUP=1; shift ;;
        --rebalances) REBALANCES=$2; shift 2 ;;
        --no-kafka) KAFKA=0; shift ;;
        --side-only) SOLO=0; shift ;;
        --consume-runs) CONSUME_RUNS=$2; shift 2 ;;
        --security) SECURITY=1; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

[ "$SOLO" = 0 ] && [ "$GROUP" = 1 ] && { echo "--group needs the logpipe-only phases; drop --side-only" >&2; exit 2; }
[ "$SOLO" = 0 ] && [ "$KAFKA" = 0 ] && { echo "--side-only and --no-kafka leave nothing to run" >&2; exit 2; }
bench_init run
STOP_SECONDS=30 # how long the broker gets to stop after TERM (the library's default is 10 s)
LOAD="$TARGET_DIR/release/examples/broker_load"

if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe, broker_load)"
    cargo build --release -p logpipe --bin logpipe
    cargo build --release -p logpipe-console --example broker_load
fi
require_executables "$BIN" "$LOAD"

log "starting $BIN broker (data in $RUN_DIR)"
start_broker "$RUN_DIR/data" "$PARTITIONS"
BROKER_STAT="/proc/$BROKER_PID/stat"

declare -a ROWS=()
LAST_RESULT=""

# run_phase LABEL broker_load-args...: runs the generator, records one table row.
run_phase() {
    local label=$1; shift
    local before after result cpu_s per_m records p50 p99
    log "$label"
    before=$(cpu_ticks "$BROKER_STAT")
    result=$(run_result "$label" "$LOAD" --bootstrap "$BOOTSTRAP" --record-size "$SIZE" --partitions "$PARTITIONS" "$@")
    after=$(cpu_ticks "$BROKER_STAT")
    LAST_RESULT=$result
    records=$(kv "$result" records)
    cpu_s=$(ticks_to_seconds $((after - before)))
    per_m=$(awk -v c="$cpu_s" -v n="$records" 'BEGIN {printf "%.2f", (n > 0 ? c / (n / 1e6) : 0)}')
    p50=$(kv "$result" p50_ms)
    p99=$(kv "$result" p99_ms)
    ROWS+=("$(printf '%-26s %12s %9s %9s %9s %10s %12s %10s' "$label" "$(kv "$result" rps)" \
        "$(kv "$result" mbps)" "${p50:--}" "${p99:--}" "$cpu_s" "$per_m" "$(peak_rss_mib "$BROKER_PID")")")
}

if [ "$SOLO" = 1 ]; then
    run_phase "produce acks=all" --mode produce --topic bench-acks-all --create-topic --acks all --records "$RECORDS"
    PRODUCE_ALL_MBPS=$(kv "$LAST_RESULT" mbps)
    run_phase "consume (acks=all topic)" --mode consume --topic bench-acks-all
    run_phase "produce acks=1" --mode produce --topic bench-acks-1 --create-topic --acks 1 --records "$RECORDS"
    PRODUCE_ONE_MBPS=$(kv "$LAST_RESULT" mbps)
    run_phase "consume (acks=1 topic)" --mode consume --topic bench-acks-1
fi

REBALANCE=""
if [ "$GROUP" = 1 ]; then
    log "group: 2 members, commit every 5000, then $REBALANCES joins of a third member"
    before=$(cpu_ticks "$BROKER_STAT")
    results=$(run_result "group phase" "$LOAD" --bootstrap "$BOOTSTRAP" --mode group --topic bench-acks-all \
        --group "bench-$$" --members 2 --commit-every 5000 --rebalances "$REBALANCES" --record-size "$SIZE")
    after=$(cpu_ticks "$BROKER_STAT")
    g=$(sed -n '/^RESULT mode=group/{p;q}' <<<"$results")
    cpu_s=$(ticks_to_seconds $((after - before)))
    ROWS+=("$(printf '%-26s %12s %9s %9s %9s %10s %12s %10s' "group of 2 (+rebalances)" "$(kv "$g" rps)" \
        "-" "-" "-" "$cpu_s" "-" "$(peak_rss_mib "$BROKER_PID")")")
    REBALANCE=$(sed -n '/^RESULT mode=rebalance/{p;q}' <<<"$results")
fi

if [ "$SECURITY" = 1 ]; then
    # shellcheck source=bench-security.sh source-path=SCRIPTDIR
    . "$(dirname "$0")/bench-security.sh"
    security_phase
fi

if [ "$KAFKA" = 1 ]; then
    # shellcheck source=bench-kafka.sh source-path=SCRIPTDIR
    . "$(dirname "$0")/bench-kafka.sh"
    side_by_side
fi

if [ "$SOLO" = 1 ]; then
    MB=$(( (RECORDS * SIZE + 1048575) / 1048576 ))
    log "dd: $MB MiB with conv=fdatasync into $RUN_DIR"
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$RUN_DIR/dd.bin" bs=1M count="$MB" conv=fdatasync status=none
    t1=$(date +%s.%N)
    rm -f "$RUN_DIR/dd.bin"
    DD_MBPS=$(awk -v b=$((MB * 1048576)) -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", b / (t1 - t0) / 1e6}')
    ratio() { awk -v a="$1" -v b="$DD_MBPS" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }

    FS=$(df -PT "$RUN_DIR" | awk 'NR == 2 {print $1 " (" $2 ")"}')
    echo
    echo "logpipe broker benchmark: $RECORDS records x $SIZE B, $PARTITIONS partitions, $(nproc) CPUs, data on $FS"
    echo "(records/s and MB/s as seen by the client; latency = send -> delivery report; MB = 10^6 bytes)"
    echo
    printf '%-26s %12s %9s %9s %9s %10s %12s %10s\n' "phase" "records/s" "MB/s" "p50 ms" "p99 ms" \
        "CPU s" "CPU s/M rec" "peak RSS MB"
    printf '%s\n' "-------------------------------------------------------------------------------------------------------"
    for row in "${ROWS[@]}"; do printf '%s\n' "$row"; done
    printf '%-26s %12s %9s\n' "dd conv=fdatasync" "-" "$DD_MBPS"
    echo
    echo "broker/dd write throughput: acks=all $(ratio "$PRODUCE_ALL_MBPS"), acks=1 $(ratio "$PRODUCE_ONE_MBPS")"
fi
[ "$KAFKA" = 1 ] && print_side_by_side
[ "$SECURITY" = 1 ] && print_security
if [ -n "$REBALANCE" ]; then
    echo "rebalance when a 3rd member joins ($(kv "$REBALANCE" count) times): min $(kv "$REBALANCE" join_min_ms) ms," \
        "median $(kv "$REBALANCE" join_p50_ms) ms, max $(kv "$REBALANCE" join_max_ms) ms;" \
        "when it leaves: median $(kv "$REBALANCE" leave_p50_ms) ms"
fi
