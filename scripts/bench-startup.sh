#!/usr/bin/env bash
# Startup benchmark: how long `logpipe run` (broker, indexer with file output, agent) takes to be ready,
# on an empty data dir and again after a clean stop with GIB GiB of broker segments.
#
#   scripts/bench-startup.sh                 10 GiB of segments
#   scripts/bench-startup.sh --gib 2         a quicker run
#
# Options: --gib N, --keep (keep the data dir), --no-build, --bin PATH (a logpipe binary to time instead of
# the release build). Environment: BENCH_TMP (default: target/bench-tmp), CARGO_TARGET_DIR.
#
# "Ready" is the first `GET /status` on the admin endpoint that answers 200, timed from just before exec;
# the endpoint comes up after the broker has opened its storage. The segments are written through the
# appliance's own broker by Kafka's kafka-producer-perf-test (100 kB records, acks=1, from .peers/kafka),
# then the appliance is stopped with TERM (a clean stop: the broker writes its clean-shutdown marker).
#
# Baseline, same run: `ls -lR` of the data dir, i.e. one stat of every segment and index file, the least
# a start that looks at each file pays. A start that rescanned the segments would instead read all GIB
# GiB, which `cat` to /dev/null would time (not run: it would take the page cache from everyone else).
# Goals (issue 17): < 1 s empty, < 3 s with 10 GiB after a clean stop. The data dir is removed at exit.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

GIB=10
KEEP=0
BUILD=1
BIN_OVERRIDE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --gib) GIB=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN_OVERRIDE=$2; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

bench_init startup
STOP_SECONDS=60
[ -n "$BIN_OVERRIDE" ] && BIN=$BIN_OVERRIDE
KAFKA_CP="$ROOT/.peers/kafka/libs/*"
[ -d "$ROOT/.peers/kafka/libs" ] || die "$ROOT/.peers/kafka is missing; run scripts/peers.sh"
if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe)"
    cargo build --release -p logpipe --bin logpipe
fi
require_executables "$BIN"
command -v curl >/dev/null || die "curl is needed to poll the admin endpoint"

need=$((GIB * 1024 * 1024 + 1024 * 1024)) # KiB, plus 1 GiB of room
mkdir -p "$RUN_DIR"
free=$(df -Pk "$RUN_DIR" | awk 'NR == 2 {print $4}')
[ "$free" -gt "$need" ] || die "$GIB GiB of segments need $((need / 1048576)) GiB free on $RUN_DIR; $((free / 1048576)) GiB are"

read -r BROKER_PORT ADMIN_PORT < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
mkdir -p "$RUN_DIR/logs"
cat >"$RUN_DIR/pipeline.toml" <<EOF
[broker]
listeners = ["127.0.0.1:$BROKER_PORT"]
log_dirs = "$RUN_DIR/data/broker"
num_partitions = 3

[admin]
address = "127.0.0.1:$ADMIN_PORT"

[agent]
registry = "$RUN_DIR/data/agent/registry.json"

[agent.output]
brokers = ["127.0.0.1:$BROKER_PORT"]
topic = "nginx"

[[agent.inputs]]
type = "file"
paths = ["$RUN_DIR/logs/access.log*"]

[indexer.input]
brokers = ["127.0.0.1:$BROKER_PORT"]
topics = ["nginx"]
group_id = "bench-startup"

[[indexer.filters]]
type = "nginx_access"

[[indexer.routes]]
index = "nginx_access-%{+YYYY.MM.dd}"

[indexer.output.file]
path = "$RUN_DIR/data/indices"
EOF

# start_appliance: `logpipe run`, polled until /status answers; sets APP_PID and READY_S.
start_appliance() {
    local t0 t1 deadline
    t0=$(now)
    start_process "$RUN_DIR/run" "$BIN" run "$RUN_DIR/pipeline.toml"
    APP_PID=$STARTED_PID
    deadline=$(( $(date +%s) + 120 ))
    until curl -fs -o /dev/null "http://127.0.0.1:$ADMIN_PORT/status"; do
        kill -0 "$APP_PID" 2>/dev/null || die "logpipe run exited: $(tail -5 "$RUN_DIR/run.err")"
        [ "$(date +%s)" -lt "$deadline" ] || die "logpipe run was not ready in 120 s"
        sleep 0.01
    done
    t1=$(now)
    READY_S=$(seconds_between "$t0" "$t1")
}

log "start on an empty data dir"
start_appliance
EMPTY_S=$READY_S
log "  ready in $EMPTY_S s"

log "filling $GIB GiB of segments (kafka-producer-perf-test, 100 kB records, acks=1)"
RECORDS=$((GIB * 1024 * 1024 * 1024 / 100000))
java -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$BROKER_PORT" --create \
    --topic bulk --partitions 3 --replication-factor 1 >/dev/null 2>&1 || die "kafka-topics --create failed"
t0=$(now)
java -Xmx512m -cp "$KAFKA_CP" org.apache.kafka.tools.ProducerPerformance --topic bulk --num-records "$RECORDS" \
    --record-size 100000 --throughput -1 --producer-props "bootstrap.servers=127.0.0.1:$BROKER_PORT" acks=1 \
    linger.ms=20 batch.size=1048576 2>/dev/null | tail -1 >&2
FILL_S=$(seconds_between "$t0" "$(now)")
stop_process "$APP_PID"
grep -q 'storage closed cleanly' "$RUN_DIR/run.err" || die "the broker did not close cleanly: $(tail -5 "$RUN_DIR/run.err")"
SEG_BYTES=$(du -sb "$RUN_DIR/data/broker" | awk '{print $1}')
FILES=$(find "$RUN_DIR/data/broker" -type f | wc -l)

t0=$(now)
ls -lR "$RUN_DIR/data/broker" >/dev/null
LS_S=$(seconds_between "$t0" "$(now)")

log "start after a clean stop with $(awk -v b="$SEG_BYTES" 'BEGIN {printf "%.2f", b / 2^30}') GiB"
start_appliance
FULL_S=$READY_S
grep -E 'storage opened' "$RUN_DIR/run.err" | tail -1 >&2 || true
stop_process "$APP_PID"

# The broker alone on the same segments (no indexer, so no enrichment rules to compile): until it prints
# `listening on`, i.e. until its storage is open.
printf '[broker]\nlisteners = ["127.0.0.1:0"]\nlog_dirs = "%s"\n' "$RUN_DIR/data/broker" >"$RUN_DIR/broker.toml"
t0=$(now)
start_server "$RUN_DIR/broker" broker "$BIN" broker -c "$RUN_DIR/broker.toml"
BROKER_S=$(seconds_between "$t0" "$(now)")
stop_process "$STARTED_PID"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
echo
echo "logpipe run startup, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(filled at $(awk -v b="$SEG_BYTES" -v s="$FILL_S" 'BEGIN {printf "%.0f", b / 2^20 / s}') MiB/s)"
echo
printf '%-46s %10s %8s\n' "case" "ready, s" "goal"
printf '%-46s %10.3f %8s\n' "empty data dir" "$EMPTY_S" "< 1"
printf '%-46s %10.3f %8s\n' "$(awk -v b="$SEG_BYTES" -v f="$FILES" 'BEGIN {printf "%.2f GiB of segments (%d files), clean stop", b / 2^30, f}')" "$FULL_S" "< 3"
printf '%-46s %10.3f\n' "  logpipe broker alone, same segments" "$BROKER_S"
printf '%-46s %10.3f\n' "baseline: ls -lR of the broker data dir" "$LS_S"
echo
echo "start with segments / empty: $(ratio "$FULL_S" "$EMPTY_S"); broker alone / ls -lR: $(ratio "$BROKER_S" "$LS_S")"
