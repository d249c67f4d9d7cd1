#!/usr/bin/env bash
# Agent benchmark: a generated nginx access log (combined format) shipped from its start by
# the release `logpipe agent` into the release `logpipe broker` with acks=all, next to baselines
# measured in the same run on the same file.
#
#   scripts/bench-agent.sh                 1 GiB file
#   scripts/bench-agent.sh --size 200M     a quicker run (K, M, G suffixes; binary units)
#
# Options: --size SIZE, --latency-seconds N (default 20), --latency-rate N (default 10000),
#          --no-rsyslog, --no-build, --keep (keep the run directory).
# Environment: BENCH_TMP (default: target/bench-tmp), CARGO_TARGET_DIR; BENCH_PROFILE=DIR records a
# `perf record -g` of the agent while it ships the file (DIR/agent.perf.data; BENCH_PERF_OPTS replaces
# `-g -F 1999`; perf takes CPU from the same cores).
#
# Prints, for the agent: lines/s, MiB/s (file bytes), agent CPU seconds per GiB (utime+stime from
# /proc/PID/stat), agent peak RSS (VmHWM). Measured from the agent's start until the topic's high
# watermark equals the file's line count (the broker's high watermark only covers fsynced records,
# so this is "acknowledged", not "sent").
# Baselines in the same run: `cat FILE > /dev/null`; `kcat -P -l` of the same file (one record per line,
# with the agent's producer settings: acks, enable.idempotence, compression, linger.ms, batch.size; the ratio agent/kcat, and
# kcat's CPU s/GiB and peak RSS from /usr/bin/time); rsyslog imfile → omkafka if Debian's rsyslog-kafka
# installs (else it says so).
# Latency: a writer appends timestamped lines at a steady --latency-rate while a fresh agent ships them;
# a consumer computes (consume time - append time). That includes the consumer's own fetch latency
# (fetch.wait.max.ms=10), so it is an upper bound on append → acknowledged.
#
# Everything runs on this machine, so the generators compete with the agent and the broker for CPU.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

SIZE=1G
# Producer settings shared by the agent and kcat (and rsyslog's omkafka), so the comparison is like for like.
ACKS=all
# The agent turns idempotence on with acks=all (retries neither duplicate nor reorder). It caps librdkafka
# at 5 produce requests in flight, which costs librdkafka CPU (measured: kcat's CPU up ~50% with it), so
# kcat gets it too.
IDEMPOTENCE=true
COMPRESSION=lz4
LINGER_MS=5
BATCH_BYTES=1000000
LAT_SECONDS=20
LAT_RATE=10000
RSYSLOG=1
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE=$2; shift 2 ;;
        --latency-seconds) LAT_SECONDS=$2; shift 2 ;;
        --latency-rate) LAT_RATE=$2; shift 2 ;;
        --no-rsyslog) RSYSLOG=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

to_bytes() {
    local s=${1^^}
    case "$s" in
        *G|*GIB) echo $(( ${s%%G*} * 1024 * 1024 * 1024 )) ;;
        *M|*MIB) echo $(( ${s%%M*} * 1024 * 1024 )) ;;
        *K|*KIB) echo $(( ${s%%K*} * 1024 )) ;;
        *) echo "$s" ;;
    esac
}
SIZE_BYTES=$(to_bytes "$SIZE")

bench_init agent-run
PY="$ROOT/.venv/bin/python"

[ -x "$PY" ] && "$PY" -c 'import confluent_kafka' 2>/dev/null \
    || die "$PY with confluent-kafka not found; run LOGPIPE_TEST_SETUP_ONLY=1 scripts/test.sh first"
command -v kcat >/dev/null || die "kcat not found; run LOGPIPE_TEST_SETUP_ONLY=1 scripts/test.sh first"

if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p logpipe"
    cargo build --release -p logpipe
fi
require_executables "$BIN"

mkdir -p "$RUN_DIR"
HELPER="$RUN_DIR/helper.py"
write_py_helper "$HELPER" <<'PYEOF'
import random

def gen(path, size):
    """A realistic nginx combined log: a few thousand distinct lines, repeated up to `size` bytes."""
    size = int(size)
    rnd = random.Random(42)
    ips = [f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}" for _ in range(500)]
    paths = ["/", "/index.html", "/api/v1/users", "/api/v1/orders?page=2", "/static/app.3f9a1c.js",
             "/static/style.css", "/images/logo.png", "/login", "/search?q=rust+kafka", "/health",
             "/api/v1/items/12345", "/wp-login.php", "/favicon.ico", "/robots.txt"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
              "curl/7.88.1", "Googlebot/2.1 (+http://www.google.com/bot.html)", "python-requests/2.31.0"]
    refs = ["-", "https://www.example.com/", "https://www.google.com/search?q=logs"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    lines = []
    t = 1_795_000_000
    for i in range(4096):
        t += rnd.randrange(0, 2)
        tm = time.gmtime(t)
        ts = f"{tm.tm_mday:02d}/{months[tm.tm_mon - 1]}/{tm.tm_year}:{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} +0000"
        status = rnd.choice([200] * 20 + [301, 304, 404, 500, 502])
        lines.append(f'{rnd.choice(ips)} - - [{ts}] "{rnd.choice(["GET"] * 8 + ["POST", "PUT"])} {rnd.choice(paths)} HTTP/1.1" '
                     f'{status} {rnd.randrange(0, 60000)} "{rnd.choice(refs)}" "{rnd.choice(agents)}"\n')
    block = "".join(lines).encode()
    n_block = len(lines)
    count = 0
    written = 0
    with open(path, "wb", buffering=1 << 20) as f:
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
            count += n_block
        for line in lines:  # top up with whole lines
            b = line.encode()
            if written + len(b) > size:
                break
            f.write(b)
            written += len(b)
            count += 1
    print(count, written)

def hw(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw", "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return 0
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in t.partitions)
    finally:
        c.close()

def proc_sample(pid):
    """(cpu seconds, VmHWM kB) of a running process, or None."""
    try:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
        return cpu, hwm
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None

def wait_hw(bootstrap, topic, target, pid, t0, timeout):
    """Poll the high watermark until it reaches `target`; sample the process while it runs."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hw", "log_level": 0})
    pid = int(pid)
    t0 = float(t0)
    target = int(target)
    deadline = time.time() + float(timeout)
    last = (0.0, 0)
    h = 0
    try:
        while True:
            if pid > 0:
                s = proc_sample(pid)
                if s:
                    last = s
            try:
                md = c.list_topics(topic, timeout=5)
                t = md.topics.get(topic)
                if t is not None and t.error is None and t.partitions:
                    h = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                            for p in t.partitions)
            except Exception:
                pass
            if h >= target:
                break
            if time.time() > deadline:
                print(json.dumps({"error": f"timeout: high watermark {h} < {target}"}))
                return
            time.sleep(0.1)
        elapsed = time.time() - t0
        if pid > 0:
            s = proc_sample(pid)
            if s:
                last = s
        print(json.dumps({"seconds": elapsed, "cpu": last[0], "hwm_kb": last[1], "hw": h}))
    finally:
        c.close()

def latwrite(path, rate, seconds):
    """Append `rate` lines/s of `ts=<unix ns> ...` for `seconds`, 1 ms ticks."""
    rate = float(rate); seconds = float(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t0 = time.monotonic()
    written = 0
    pad = "x" * 120
    while True:
        el = time.monotonic() - t0
        if el >= seconds:
            break
        due = int(rate * el) - written
        if due > 0:
            now = time.time_ns()
            os.write(fd, "".join(f"ts={now} n={written + i} {pad}\n" for i in range(due)).encode())
            written += due
        time.sleep(0.001)
    os.close(fd)
    print(written)

def latconsume(bootstrap, topic, expect, warmup_s, timeout):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lat", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10, "fetch.min.bytes": 1, "log_level": 0})
    c.assign([TopicPartition(topic, 0, 0)])
    expect = int(expect)
    lats = []
    first = None
    n = 0
    deadline = time.time() + float(timeout)
    while n < expect and time.time() < deadline:
        # A short timeout: consume() returns when it has num_messages or the timeout passed, and a
        # long one would add its own wait to every latency.
        for m in c.consume(num_messages=10000, timeout=0.005):
            if m.error():
                continue
            now = time.time_ns()
            msg = json.loads(m.value())["message"]
            ts = int(msg.split(" ", 1)[0][3:])
            if first is None:
                first = ts
            n += 1
            if ts - first >= float(warmup_s) * 1e9:
                lats.append((now - ts) / 1e6)
    c.close()
    lats.sort()
    if not lats:
        print(json.dumps({"error": f"no samples ({n} of {expect} lines consumed)"}))
        return
    print(json.dumps({"consumed": n, "samples": len(lats), **percentiles(lats)}))
PYEOF

# ---------------------------------------------------------------------------------------------
# The input file

LOG_DIR="$RUN_DIR/logs"
mkdir -p "$LOG_DIR"
FILE="$LOG_DIR/access.log"
log "generating $SIZE_BYTES bytes of nginx combined log in $FILE"
read -r LINES BYTES < <("$PY" "$HELPER" gen "$FILE" "$SIZE_BYTES")
MIB=$(mibs "$BYTES" 1)
log "$LINES lines, $MIB MiB"

# ---------------------------------------------------------------------------------------------
# Broker

start_broker "$RUN_DIR/broker" 1

# ---------------------------------------------------------------------------------------------
# cat baseline (the file is in the page cache after generation, as it is for the agent)

T0=$(now)
cat "$FILE" >/dev/null
CAT_S=$(seconds_between "$T0" "$(now)")

# ---------------------------------------------------------------------------------------------
# The agent

write_agent_config() { # name topic path registry
    cat >"$RUN_DIR/$1.toml" <<EOF
[agent]
registry = "$4"
summary_interval = "10s"

[agent.output]
brokers = ["$BOOTSTRAP"]
topic = "$2"
acks = "$ACKS"
compression = "$COMPRESSION"
linger_ms = $LINGER_MS
batch_bytes = $BATCH_BYTES

[[agent.inputs]]
type = "file"
paths = ["$3"]
tags = ["access"]
scan_frequency = "1s"
EOF
}

write_agent_config agent bench-agent "$FILE" "$RUN_DIR/agent/registry.json"
log "agent: shipping $FILE"
T0=$(now)
start_process "$RUN_DIR/agent" "$BIN" agent -c "$RUN_DIR/agent.toml"
AGENT_PID=$STARTED_PID
PROFILE_PID=""
if [ -n "${BENCH_PROFILE:-}" ]; then
    mkdir -p "$BENCH_PROFILE"
    # shellcheck disable=SC2086
    perf record ${BENCH_PERF_OPTS:--g -F 1999} -p "$AGENT_PID" -o "$BENCH_PROFILE/agent.perf.data" >/dev/null 2>"$BENCH_PROFILE/perf.err" &
    PROFILE_PID=$!
fi
AGENT_JSON=$("$PY" "$HELPER" wait_hw "$BOOTSTRAP" bench-agent "$LINES" "$AGENT_PID" "$T0" 3600)
stop_process "$AGENT_PID"
# perf stops when the agent has exited (a background job of a script ignores SIGINT).
[ -z "$PROFILE_PID" ] || wait "$PROFILE_PID" 2>/dev/null || true
case "$AGENT_JSON" in *error*) die "agent: $AGENT_JSON; $(tail -5 "$RUN_DIR/agent.err")" ;; esac
AGENT_S=$(field "$AGENT_JSON" seconds)
AGENT_CPU=$(field "$AGENT_JSON" cpu)
AGENT_HWM=$(field "$AGENT_JSON" hwm_kb)

# ---------------------------------------------------------------------------------------------
# kcat -P -l baseline

KCAT_SETTINGS=(-X "acks=$ACKS" -X "enable.idempotence=$IDEMPOTENCE" -X "compression.codec=$COMPRESSION" -X "linger.ms=$LINGER_MS" -X "batch.size=$BATCH_BYTES")
log "kcat -P -l ${KCAT_SETTINGS[*]}"
T0=$(now)
/usr/bin/time -f '%U %S %M' -o "$RUN_DIR/kcat.time" kcat -P -l -b "$BOOTSTRAP" -t bench-kcat "${KCAT_SETTINGS[@]}" "$FILE"
KCAT_JSON=$("$PY" "$HELPER" wait_hw "$BOOTSTRAP" bench-kcat "$LINES" 0 "$T0" 600)
case "$KCAT_JSON" in *error*) die "kcat: $KCAT_JSON" ;; esac
KCAT_S=$(field "$KCAT_JSON" seconds)   # until acknowledged, like the agent
read -r KCAT_USER KCAT_SYS KCAT_HWM_KB <"$RUN_DIR/kcat.time"

# ---------------------------------------------------------------------------------------------
# rsyslog imfile → omkafka

RSYS_LINE="rsyslog-kafka not available"
if [ "$RSYSLOG" = 1 ]; then
    if ! [ -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ] && ! ls /usr/lib/*/rsyslog/omkafka.so >/dev/null 2>&1; then
        # (policy captured first: with pipefail, `grep -q` closing the pipe early would read as "no")
        policy=$(apt-cache policy rsyslog-kafka 2>/dev/null || true)
        if [[ "$policy" == *"Candidate: "[0-9]* ]]; then
            log "installing rsyslog and rsyslog-kafka (Debian packages)"
            SUDO=(); [ "$(id -u)" -ne 0 ] && SUDO=(sudo)
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                rsyslog rsyslog-kafka >&2 || true
        fi
    fi
    RSYSLOGD=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
    if [ -x "$RSYSLOGD" ] && ls /usr/lib/*/rsyslog/omkafka.so >/dev/null 2>&1; then
        mkdir -p "$RUN_DIR/rsyslog"
        cat >"$RUN_DIR/rsyslog.conf" <<EOF
global(workDirectory="$RUN_DIR/rsyslog")
module(load="imfile")
module(load="omkafka")
template(name="msgonly" type="string" string="%msg%")
ruleset(name="tokafka") {
    action(type="omkafka" broker=["$BOOTSTRAP"] topic="bench-rsyslog" template="msgonly"
           confParam=["compression.codec=$COMPRESSION", "request.required.acks=-1", "linger.ms=$LINGER_MS"]
           queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="10000")
}
input(type="imfile" File="$FILE" Tag="nginx" ruleset="tokafka" freshStartTail="off" MaxLinesAtOnce="0")
EOF
        log "rsyslog imfile -> omkafka"
        T0=$(now)
        "$RSYSLOGD" -n -f "$RUN_DIR/rsyslog.conf" -i "$RUN_DIR/rsyslog.pid" >"$RUN_DIR/rsyslog.out" 2>&1 &
        RSYS_PID=$!
        PIDS+=("$RSYS_PID")
        RSYS_JSON=$("$PY" "$HELPER" wait_hw "$BOOTSTRAP" bench-rsyslog "$LINES" "$RSYS_PID" "$T0" 3600)
        stop_process "$RSYS_PID"
        case "$RSYS_JSON" in
            *error*) RSYS_LINE="rsyslog imfile -> omkafka: failed ($RSYS_JSON; $(tail -3 "$RUN_DIR/rsyslog.out" | tr '\n' ' '))" ;;
            *)
                RSYS_S=$(field "$RSYS_JSON" seconds)
                RSYS_LINE=$(printf 'rsyslog imfile -> omkafka: %s lines/s, %s MiB/s, CPU %.1f s/GiB, peak RSS %s MiB; agent/rsyslog = %.2f' \
                    "$(rate "$LINES" "$RSYS_S")" "$(mibs "$BYTES" "$RSYS_S")" \
                    "$(awk -v c="$(field "$RSYS_JSON" cpu)" -v b="$BYTES" 'BEGIN { print c * 1073741824 / b }')" \
                    "$(( $(field "$RSYS_JSON" hwm_kb) / 1024 ))" \
                    "$(awk -v a="$AGENT_S" -v r="$RSYS_S" 'BEGIN { print r / a }')")
                ;;
        esac
    fi
fi

# ---------------------------------------------------------------------------------------------
# Latency at a steady rate

LAT_FILE="$LOG_DIR/latency.log"
: >"$LAT_FILE"
write_agent_config latency bench-latency "$LAT_FILE" "$RUN_DIR/latency/registry.json"
sed -i 's/^scan_frequency = .*/scan_frequency = "1s"/' "$RUN_DIR/latency.toml"
log "latency: $LAT_RATE lines/s for $LAT_SECONDS s"
start_process "$RUN_DIR/latency" "$BIN" agent -c "$RUN_DIR/latency.toml"
LAT_AGENT=$STARTED_PID
for _ in $(seq 1 100); do grep -q 'harvesting new file' "$RUN_DIR/latency.err" && break; sleep 0.1; done
LAT_EXPECT=$(awk -v r="$LAT_RATE" -v s="$LAT_SECONDS" 'BEGIN { printf "%d", r * s - r / 100 }')
"$PY" "$HELPER" latconsume "$BOOTSTRAP" bench-latency "$LAT_EXPECT" 2 $((LAT_SECONDS + 60)) >"$RUN_DIR/latency.json" &
LAT_CONSUMER=$!
PIDS+=("$LAT_CONSUMER")
LAT_WRITTEN=$("$PY" "$HELPER" latwrite "$LAT_FILE" "$LAT_RATE" "$LAT_SECONDS")
wait "$LAT_CONSUMER" || true
stop_process "$LAT_AGENT"
LAT_JSON=$(cat "$RUN_DIR/latency.json")

# ---------------------------------------------------------------------------------------------
# Report

CPU_PER_GIB=$(awk -v c="$AGENT_CPU" -v b="$BYTES" 'BEGIN { printf "%.1f", c * 1073741824 / b }')
KCAT_CPU_PER_GIB=$(awk -v u="$KCAT_USER" -v s="$KCAT_SYS" -v b="$BYTES" 'BEGIN { printf "%.1f", (u + s) * 1073741824 / b }')
echo
echo "agent benchmark: $LINES lines, $MIB MiB nginx combined log, release build ($(nproc) CPUs), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  producer settings, agent and kcat alike: acks=$ACKS enable.idempotence=$IDEMPOTENCE compression=$COMPRESSION linger.ms=$LINGER_MS batch.size=$BATCH_BYTES"
echo "  (kcat sends bare lines; the agent sends the full envelope, about 2.7x the bytes, and keeps its registry)"
printf '  agent (logpipe agent):      %s lines/s, %s MiB/s, %.1f s; CPU %s s/GiB; peak RSS %s MiB\n' \
    "$(rate "$LINES" "$AGENT_S")" "$(mibs "$BYTES" "$AGENT_S")" "$AGENT_S" "$CPU_PER_GIB" "$((AGENT_HWM / 1024))"
printf '  cat FILE > /dev/null:       %s MiB/s (%.2f s)\n' "$(mibs "$BYTES" "$CAT_S")" "$CAT_S"
printf '  kcat -P -l:                 %s lines/s, %s MiB/s, %.1f s; CPU %s s/GiB; peak RSS %s MiB\n' \
    "$(rate "$LINES" "$KCAT_S")" "$(mibs "$BYTES" "$KCAT_S")" "$KCAT_S" "$KCAT_CPU_PER_GIB" "$((KCAT_HWM_KB / 1024))"
printf '  agent/kcat throughput = %.2f, CPU per GiB agent/kcat = %.2f\n' \
    "$(awk -v a="$AGENT_S" -v k="$KCAT_S" 'BEGIN { print k / a }')" \
    "$(awk -v a="$CPU_PER_GIB" -v k="$KCAT_CPU_PER_GIB" 'BEGIN { print (k > 0) ? a / k : 0 }')"
echo "  $RSYS_LINE"
case "$LAT_JSON" in
    *p99*)
        printf '  latency at %s lines/s (%s written; append -> consumed, includes consumer fetch latency): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n' \
            "$LAT_RATE" "$LAT_WRITTEN" "$(field "$LAT_JSON" p50)" "$(field "$LAT_JSON" p90)" "$(field "$LAT_JSON" p99)" "$(field "$LAT_JSON" max)" ;;
    *) echo "  latency: failed: $LAT_JSON" ;;
esac
