# shellcheck shell=bash
# What the scripts/bench-*.sh benchmarks share. Sourced, not run:
#
#   . "$(dirname "$0")/bench-lib.sh"
#
# Sourcing it moves to the repository root and sets ROOT. After its own option parsing (which sets KEEP),
# a script calls `bench_init NAME`: that sets TARGET_DIR, BENCH_TMP, RUN_DIR, BIN, CLK_TCK and PIDS and
# installs the traps that, on exit, stop every process in PIDS and remove RUN_DIR unless KEEP=1.
# Processes started with start_process, start_server or start_broker are added to PIDS.
# Environment: BENCH_TMP (default: target/bench-tmp, i.e. the repo's disk), CARGO_TARGET_DIR.

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD

# log MESSAGE...: a progress line on stderr.
log() { printf '==> %s\n' "$*" >&2; }
# die MESSAGE...: an error line on stderr, then exit 1 (the EXIT trap cleans up).
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# bench_init NAME: the run's globals (RUN_DIR is $BENCH_TMP/NAME-PID) and the exit traps.
bench_init() {
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    BENCH_TMP="${BENCH_TMP:-$TARGET_DIR/bench-tmp}"
    RUN_DIR="$BENCH_TMP/$1-$$"
    BIN="$TARGET_DIR/release/logpipe"
    CLK_TCK=$(getconf CLK_TCK)
    PIDS=()
    STOP_SECONDS=10
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# cleanup: TERM to every process in PIDS, KILL to any still alive STOP_SECONDS later; RUN_DIR goes unless KEEP=1.
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 $((STOP_SECONDS * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 0 ]; then rm -rf "$RUN_DIR"; else log "kept $RUN_DIR"; fi
}

# require_executables FILE...: dies naming the first FILE that is missing or not executable.
require_executables() {
    local exe
    for exe in "$@"; do
        [ -x "$exe" ] || die "$exe missing (drop --no-build)"
    done
}

# ---------------------------------------------------------------------------------------------
# Processes

# start_process PREFIX CMD...: CMD in the background, stdout in PREFIX.out, stderr in PREFIX.err; sets STARTED_PID.
start_process() {
    local prefix=$1
    shift
    "$@" >"$prefix.out" 2>"$prefix.err" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# start_server PREFIX WHAT CMD...: start_process, then waits for its `listening on ADDR` line; sets LISTEN_ADDR.
start_server() {
    local prefix=$1 what=$2 line
    shift 2
    start_process "$prefix" "$@"
    line=$(wait_line "$prefix.out" '^listening on ' "$STARTED_PID" "$what")
    LISTEN_ADDR=${line#listening on }
}

# start_broker DATA_DIR PARTITIONS: the release broker on 127.0.0.1:0 (RUN_DIR/broker.toml, .out, .err);
# sets BROKER_PID and BOOTSTRAP.
start_broker() {
    mkdir -p "$1"
    cat >"$RUN_DIR/broker.toml" <<EOF
[broker]
listeners = ["127.0.0.1:0"]
log_dirs = "$1"
num_partitions = $2
group_initial_rebalance_delay_ms = 0
EOF
    start_server "$RUN_DIR/broker" broker "$BIN" broker -c "$RUN_DIR/broker.toml"
    BROKER_PID=$STARTED_PID
    BOOTSTRAP=$LISTEN_ADDR
    log "broker pid $BROKER_PID on $BOOTSTRAP"
}

# stop_process PID: TERM, then waits for it to exit.
stop_process() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_line FILE REGEX PID WHAT [SECONDS] [COUNT]: the COUNTth (default: first) line of FILE matching
# REGEX, waiting (default 30 s) while PID lives; on failure the message shows the tail of FILE's sibling
# .err file.
wait_line() {
    local line count=${6:-1} deadline=$(( $(date +%s) + ${5:-30} ))
    while :; do
        if line=$(grep -m"$count" "$2" "$1" 2>/dev/null) && [ "$(printf '%s\n' "$line" | wc -l)" -ge "$count" ]; then
            printf '%s\n' "$line" | tail -1
            return 0
        fi
        kill -0 "$3" 2>/dev/null || die "$4 exited: $(tail -5 "${1%.*}.err" 2>/dev/null)"
        [ "$(date +%s)" -lt "$deadline" ] || die "$4 printed no '$2' line in ${5:-30} s"
        sleep 0.05
    done
}

# wait_reached SINK_OUT EXPECT PID WHAT ERR_FILE SECONDS: the bench_sink stand-in's `reached ...` line, once it
# has accepted EXPECT documents; dies if PID (WHAT, stderr in ERR_FILE) exits first or SECONDS pass.
# It runs while the work is measured, so it polls four times a second and reads the clock without a fork:
# at twenty polls a second, each forking `date`, `grep` and `sleep`, the shell took 5 % of the machine's
# samples in a profile of bench-e2e.sh. The rates are unaffected by how often it polls: they are timed by
# the stand-in (`first_request_unix`, `reached_unix`).
wait_reached() {
    local line deadline=$(( EPOCHSECONDS + $6 ))
    while :; do
        if line=$(grep -m1 '^reached ' "$1" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || die "$4 exited: $(tail -5 "$5")"
        [ "$EPOCHSECONDS" -lt "$deadline" ] \
            || die "the stand-in saw fewer than $2 documents in $6 s: $(grep '^progress' "$1" | tail -1)"
        sleep 0.25
    done
}

# run_result WHAT CMD...: runs a load tool in the foreground; its summary goes to stderr, indented, and its
# `RESULT key=value ...` lines to stdout. If it fails, dies with its whole output.
run_result() {
    local what=$1 out
    shift
    out=$("$@") || { printf '%s\n' "$out" >&2; die "$what failed"; }
    printf '%s\n' "$out" | sed '/^RESULT/d; s/^/    /' >&2
    printf '%s\n' "$out" | sed -n '/^RESULT/p'
}

# ---------------------------------------------------------------------------------------------
# Measurements and figures

# now: wall-clock time in seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }
# seconds_between T0 T1: T1 - T0 in seconds.
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
# cpu_ticks STAT_FILE: utime + stime in clock ticks from /proc/PID/stat or /proc/PID/task/TID/stat. The
# command name, in parentheses, is cut off first: it may hold spaces.
cpu_ticks() { sed 's/^.*) //' "$1" | awk '{print $12 + $13}'; }
# ticks_to_seconds TICKS: clock ticks as seconds, two decimals.
ticks_to_seconds() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }
# cpu_seconds PID: CPU seconds (utime + stime) PID has used so far, two decimals.
cpu_seconds() { ticks_to_seconds "$(cpu_ticks "/proc/$1/stat")"; }
# peak_rss_mib PID: peak resident set size (VmHWM) of PID in whole MiB.
peak_rss_mib() { awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# kv "RESULT ... key=value ..." key: the value of key on a RESULT (or stand-in `reached`) line.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# field JSON KEY: one value of a JSON object, read with $PY.
field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# rate COUNT SECONDS: COUNT per second, whole.
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
# mibs BYTES SECONDS: MiB per second, one decimal (SECONDS 1 gives plain MiB).
mibs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }

# write_py_helper FILE: a Python helper script made of the shared functions below and the script's own,
# read from stdin; call one as `"$PY" FILE NAME ARGS...`.
write_py_helper() {
    {
        cat <<'PYEOF'
import json, os, sys, time

def percentiles(ascending):
    """p50, p90, p99 (the sample at index int(p * n)) and max of an ascending list; None when it is empty."""
    q = lambda p: ascending[min(len(ascending) - 1, int(p * len(ascending)))] if ascending else None
    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": ascending[-1] if ascending else None}

PYEOF
        cat
        cat <<'PYEOF'

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
PYEOF
    } >"$1"
}
