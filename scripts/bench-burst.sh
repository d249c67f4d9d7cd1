#!/usr/bin/env bash
# Memory under a burst: `logpipe run` on the nginx pipeline (broker, agent, indexer writing NDJSON files)
# fed by `logpipe gen nginx` at a steady rate, then at 10× that rate, then left to drain. Prints the
# appliance's peak RSS (VmHWM) after the steady phase and after the burst has drained, their ratio, and
# how far the indexer was behind when each phase ended (the backlog that should sit in the broker's
# segments, not in RAM; it grows for as long as lines come faster than they are indexed, so at the end
# of the burst it is at its largest).
#
#   scripts/bench-burst.sh                       5,000 lines/s for 20 s, then 50,000 lines/s for 20 s
#   scripts/bench-burst.sh --rate 2000 --seconds 10
#
# Options: --rate N, --seconds S, --keep, --no-build, --bin PATH, --bounded (the agent's queue_max_bytes at
# 8 MiB and the indexer's prefetch, queued.max.messages.kbytes, at 8 MiB: an earlier comparison's
# settings; the defaults are now 8 MiB with the agent's own producer and 1 MiB).
# Goal: peak RSS < 128 MiB.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

RATE=5000
SECONDS_EACH=20
KEEP=0
BUILD=1
BIN_OVERRIDE=""
BOUNDED=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN_OVERRIDE=$2; BUILD=0; shift 2 ;;
        --bounded) BOUNDED=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

bench_init burst
STOP_SECONDS=60
[ -n "$BIN_OVERRIDE" ] && BIN=$BIN_OVERRIDE
if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe)"
    cargo build --release -p logpipe --bin logpipe
fi
require_executables "$BIN"

mkdir -p "$RUN_DIR/logs"
cat >"$RUN_DIR/pipeline.toml" <<EOF
[broker]
listeners = ["127.0.0.1:0"]
log_dirs = "$RUN_DIR/data/broker"
num_partitions = 3

[admin]
enabled = false

[agent]
registry = "$RUN_DIR/data/agent/registry.json"

[agent.output]
brokers = ["BOOTSTRAP"]
topic = "nginx"

[[agent.inputs]]
type = "file"
paths = ["$RUN_DIR/logs/access.log*"]

[indexer.input]
brokers = ["BOOTSTRAP"]
topics = ["nginx"]
group_id = "bench-burst"
auto_offset_reset = "earliest"

[[indexer.filters]]
type = "nginx_access"

[[indexer.routes]]
index = "nginx_access"

[indexer.output.file]
path = "$RUN_DIR/data/indices"
EOF
if [ "$BOUNDED" = 1 ]; then
    sed -i 's/^\[agent\]$/[agent]\nqueue_max_bytes = 8388608/' "$RUN_DIR/pipeline.toml"
    printf '\n[indexer.input.librdkafka]\n"queued.max.messages.kbytes" = "8192"\n' >>"$RUN_DIR/pipeline.toml"
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:0/127.0.0.1:$PORT/; s/BOOTSTRAP/127.0.0.1:$PORT/" "$RUN_DIR/pipeline.toml"

start_server "$RUN_DIR/run" appliance "$BIN" run "$RUN_DIR/pipeline.toml"
APP_PID=$STARTED_PID

# lines: how many lines the files under DIR hold (0 while there are none).
lines() { find "$1" -type f -exec cat {} + 2>/dev/null | wc -l || true; }
indexed() { lines "$RUN_DIR/data/indices"; }
# generate RATE: SECONDS_EACH seconds of access lines at RATE; sets LAG, the lines written and not yet
# indexed when the generator is done.
generate() {
    "$BIN" gen nginx --dir "$RUN_DIR/logs" --rate "$1" --duration "$SECONDS_EACH" --error-ratio 0 \
        >>"$RUN_DIR/gen.out" 2>>"$RUN_DIR/gen.err"
    LAG=$(( $(lines "$RUN_DIR/logs") - $(indexed) ))
}

log "steady: $RATE lines/s for $SECONDS_EACH s"
generate "$RATE"
STEADY_RSS=$(peak_rss_mib "$APP_PID")
STEADY_LAG=$LAG
log "burst: $((RATE * 10)) lines/s for $SECONDS_EACH s"
t0=$(now)
generate $((RATE * 10))
BURST_LAG=$LAG
BURST_BROKER=$(du -sm "$RUN_DIR/data/broker" | awk '{print $1}')
total=$(lines "$RUN_DIR/logs")
log "draining: $total lines written"
deadline=$(( $(date +%s) + 300 ))
until [ "$(indexed)" -ge "$total" ]; do
    kill -0 "$APP_PID" 2>/dev/null || die "logpipe run exited: $(tail -5 "$RUN_DIR/run.err")"
    [ "$(date +%s)" -lt "$deadline" ] || die "only $(indexed) of $total lines indexed after 300 s"
    sleep 0.5
done
DRAIN_S=$(seconds_between "$t0" "$(now)")
BURST_RSS=$(peak_rss_mib "$APP_PID")

echo
echo "logpipe run under a 10x burst, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-44s %12s %16s\n' "phase" "peak RSS MiB" "lag at its end"
printf '%-44s %12s %16s\n' "steady, $RATE lines/s for $SECONDS_EACH s" "$STEADY_RSS" "$STEADY_LAG"
printf '%-44s %12s %16s\n' "burst, $((RATE * 10)) lines/s for $SECONDS_EACH s, drained" "$BURST_RSS" "$BURST_LAG"
echo
echo "burst/steady peak RSS: $(awk -v a="$BURST_RSS" -v b="$STEADY_RSS" 'BEGIN { printf "%.2f", a / b }');" \
    "$total lines indexed ${DRAIN_S} s after the burst began; broker data ${BURST_BROKER} MiB on disk; goal: peak RSS < 128 MiB"
