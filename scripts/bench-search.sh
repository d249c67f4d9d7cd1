#!/usr/bin/env bash
# The Search page's file-output scan against `grep -c`, on about 1 GiB of indexed documents.
#
#   scripts/bench-search.sh [--gib N] [--lines N] [--keep] [--no-build]
#   (LOGPIPE_BIN: the logpipe that indexes the corpus; default target/debug/logpipe)
#
# 1. Indexes `logpipe gen nginx --lines N` (default 100000) with `logpipe run` (broker, agent, indexer with
#    the file output) and waits until /status counts every line indexed;
# 2. copies the daily NDJSON files it wrote, under new dates, until the directory holds N GiB (default 1);
# 3. times, warm (each run once before timing, best of 3): `grep -c TERM` over the files and the console's
#    scan (`logpipe-search`'s example `scan`, the code behind /api/search) for the same TERM, as a bare term
#    and as `url.path:"TERM"`; prints both, their hit counts and the ratios. The goal is ratio ≤ 3.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"

GIB=1 LINES=100000 KEEP=0 BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --gib) GIB=$2; shift 2 ;;
        --lines) LINES=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        *) die "unknown option $1 (see the comment at the top of $0)" ;;
    esac
done
bench_init search
SCAN="$TARGET_DIR/release/examples/scan"
# The corpus is made by a debug logpipe (its speed is not measured); the scan is timed in release.
BIN="${LOGPIPE_BIN:-$TARGET_DIR/debug/logpipe}"
if [ "$BUILD" = 1 ]; then
    log "cargo build --bin logpipe; cargo build --release -p logpipe-search --example scan"
    cargo build --bin logpipe >&2
    cargo build --release -p logpipe-search --example scan >&2
fi
require_executables "$BIN" "$SCAN"
mkdir -p "$RUN_DIR/logs" "$RUN_DIR/data"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$RUN_DIR/pipeline.toml" <<EOF
[broker]
listeners = ["127.0.0.1:$PORT"]
log_dirs = "$RUN_DIR/data/broker"
num_partitions = 2
group_initial_rebalance_delay_ms = 0
[admin]
address = "127.0.0.1:0"
[agent]
registry = "$RUN_DIR/data/registry.json"
[agent.output]
brokers = ["127.0.0.1:$PORT"]
topic = "nginx"
[[agent.inputs]]
type = "file"
paths = ["$RUN_DIR/logs/access.log"]
tags = ["access"]
scan_frequency = "1s"
[indexer.input]
brokers = ["127.0.0.1:$PORT"]
topics = ["nginx"]
auto_offset_reset = "earliest"
[[indexer.filters]]
type = "nginx_access"
when = { tag = "access" }
[[indexer.routes]]
when = { tag = "access" }
index = "nginx_access-%{+YYYY.MM.dd}"
[indexer.output.file]
path = "$RUN_DIR/indices"
EOF

log "generating $LINES access lines"
"$BIN" gen nginx --dir "$RUN_DIR/logs" --lines "$LINES" --rate 0 --error-ratio 0 --seed 14 >/dev/null
log "indexing them with logpipe run"
"$BIN" run "$RUN_DIR/pipeline.toml" >"$RUN_DIR/run.out" 2>"$RUN_DIR/run.err" &
PIDS+=($!)
ADMIN=$(wait_line "$RUN_DIR/run.out" '^admin on http://' "${PIDS[-1]}" "logpipe run" 60)
ADMIN=${ADMIN#admin on http://}
indexed() {
    curl -sf "http://$ADMIN/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(i["indexed"] for i in (s["indexer"] or {}).get("indices", [])))'
}
for _ in $(seq 1200); do
    [ "$(indexed)" = "$LINES" ] && break
    sleep 0.5
done
[ "$(indexed)" = "$LINES" ] || die "only $(indexed) of $LINES lines indexed (see $RUN_DIR/run.err)"
kill -TERM "${PIDS[-1]}"
wait "${PIDS[-1]}" || true

log "copying the indexed files up to $GIB GiB"
SEED=$(ls "$RUN_DIR"/indices/*.ndjson)
WANT=$((GIB * 1024 * 1024 * 1024))
day=0
while [ "$(du -cb "$RUN_DIR"/indices/*.ndjson | tail -1 | cut -f1)" -lt "$WANT" ]; do
    day=$((day + 1))
    name=$(date -u -d "2020-01-01 + $day days" +%Y.%m.%d)
    cat $SEED >"$RUN_DIR/indices/copy-$name.ndjson"
done

BYTES=$(du -cb "$RUN_DIR"/indices/*.ndjson | tail -1 | cut -f1)
FILES=$(ls "$RUN_DIR"/indices/*.ndjson | wc -l)

TERM_TEXT=/wp-login.php
best() { # best wall time in ms of 3 runs of "$@" (after a warm-up run) in BEST_MS; the last run's stdout in OUT
    local t0 t1 ms
    BEST_MS=999999999
    "$@" >/dev/null
    for _ in 1 2 3; do
        t0=$(date +%s%N)
        OUT=$("$@")
        t1=$(date +%s%N)
        ms=$(((t1 - t0) / 1000000))
        if [ "$ms" -lt "$BEST_MS" ]; then BEST_MS=$ms; fi
    done
}
total_of() { echo "$1" | sed 's/.*"total":\([0-9]*\).*/\1/'; }
grep_count() { grep -c -F -- "$TERM_TEXT" "$RUN_DIR"/indices/*.ndjson | awk -F: '{ n += $NF } END { print n }'; }
best grep_count
GREP_MS=$BEST_MS GREP_HITS=$OUT
best "$SCAN" "$RUN_DIR/indices" "$TERM_TEXT"
TERM_MS=$BEST_MS TERM_HITS=$(total_of "$OUT")
best "$SCAN" "$RUN_DIR/indices" "url.path:\"$TERM_TEXT\""
FIELD_MS=$BEST_MS FIELD_HITS=$(total_of "$OUT")

ratio() { python3 -c "print(f'{$1 / max($2, 1):.2f}')"; }
echo "corpus: $FILES files, $BYTES bytes ($(python3 -c "print(f'{$BYTES / 2**30:.2f}')") GiB) of indexed documents"
echo "grep -c -F '$TERM_TEXT':              ${GREP_MS} ms, $GREP_HITS lines"
echo "console scan '$TERM_TEXT':            ${TERM_MS} ms, $TERM_HITS hits, ratio $(ratio "$TERM_MS" "$GREP_MS")"
echo "console scan 'url.path:\"$TERM_TEXT\"': ${FIELD_MS} ms, $FIELD_HITS hits, ratio $(ratio "$FIELD_MS" "$GREP_MS")"
