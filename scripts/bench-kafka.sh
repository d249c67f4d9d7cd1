# Sourced by bench-broker.sh: the same load against logpipe's broker and a single-node Apache Kafka 4.4,
# each broker alone. Uses bench-broker.sh's RECORDS, SIZE, PARTITIONS, LOAD, BROKER_PID, BOOTSTRAP,
# RUN_DIR, ROOT and CONSUME_RUNS, and bench-lib.sh's helpers.
#
# side_by_side          runs the phases (stops the logpipe broker, starts and stops Kafka)
# print_side_by_side    prints the table and the logpipe/Kafka ratios

KAFKA_CP="$ROOT/.peers/kafka/libs/*"
declare -A SIDE=()

per_million() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$RECORDS" 'BEGIN { printf "%.2f", t / hz / (n / 1e6) }'; }
# client_metric NAME TEXT: the client-wide value of one metric in --print-metrics output.
client_metric() { awk -F': ' -v m="$1:{client-id=" 'index($1, m) == 1 && $1 !~ /topic=/ { gsub(/ /, "", $2); printf "%.3f", $2 }' <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }
side_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", (b > 0 ? a / b : 0) }'; }

# side_phases NAME PID BOOTSTRAP: librdkafka (broker_load) and Kafka's perf tools, produce acks=all then
# consume; fills SIDE[NAME,tool,phase,rps|cpu] and SIDE[NAME,rss].
side_phases() {
    local name=$1 pid=$2 bootstrap=$3 stat="/proc/$2/stat" before after result topic out rps
    topic="side-rdkafka-$name"
    before=$(cpu_ticks "$stat")
    result=$(run_result "$name librdkafka produce" "$LOAD" --bootstrap "$bootstrap" --record-size "$SIZE" \
        --partitions "$PARTITIONS" --mode produce --topic "$topic" --create-topic --acks all --records "$RECORDS")
    after=$(cpu_ticks "$stat")
    SIDE[$name,rdkafka,produce,rps]=$(kv "$result" rps)
    SIDE[$name,rdkafka,produce,cpu]=$(per_million $((after - before)))
    before=$(cpu_ticks "$stat")
    result=$(run_result "$name librdkafka consume" "$LOAD" --bootstrap "$bootstrap" --record-size "$SIZE" \
        --partitions "$PARTITIONS" --mode consume --topic "$topic")
    after=$(cpu_ticks "$stat")
    SIDE[$name,rdkafka,consume,rps]=$(kv "$result" rps)
    SIDE[$name,rdkafka,consume,cpu]=$(per_million $((after - before)))

    topic="side-perftest-$name"
    java -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create \
        --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1 >/dev/null 2>&1 \
        || die "kafka-topics --create failed against $name"
    before=$(cpu_ticks "$stat")
    out=$(java -Xmx512m -cp "$KAFKA_CP" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
        --num-records "$RECORDS" --record-size "$SIZE" --throughput -1 \
        --producer-props "bootstrap.servers=$bootstrap" acks=all linger.ms=5 2>/dev/null | tail -1)
    after=$(cpu_ticks "$stat")
    log "    $name kafka-producer-perf-test: $out"
    rps=$(sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$out")
    SIDE[$name,perf-test,produce,rps]=$(printf '%.0f' "${rps:-0}")
    SIDE[$name,perf-test,produce,cpu]=$(per_million $((after - before)))
    # kafka-consumer-perf-test CONSUME_RUNS times (each a new group from the log start): the median run.
    # --print-metrics adds the client's view of the broker: its mean fetch latency (request sent to
    # response read) and the share of its time spent waiting on the network (io-wait-ratio); a consumer
    # that seldom waits is bound by its own CPU, not by the broker.
    local run consume=() fetch=() cpu=() latency=() io_wait=() all
    start_profile "$name" "$pid"
    for ((run = 1; run <= CONSUME_RUNS; run++)); do
        before=$(cpu_ticks "$stat")
        all=$(java -Xmx512m -cp "$KAFKA_CP" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bootstrap" \
            --topic "$topic" --messages "$RECORDS" --timeout 120000 --print-metrics 2>/dev/null)
        after=$(cpu_ticks "$stat")
        out=$(grep -E '^[0-9]{4}-' <<<"$all" | tail -1)
        latency+=("$(printf '%.1f' "$(client_metric consumer-fetch-manager-metrics:fetch-latency-avg "$all")")")
        io_wait+=("$(awk -v r="$(client_metric consumer-metrics:io-wait-ratio "$all")" 'BEGIN { printf "%.1f", r * 100 }')")
        log "    $name kafka-consumer-perf-test ($run/$CONSUME_RUNS): $out; fetch latency ${latency[-1]} ms," \
            "client waiting on the network ${io_wait[-1]} % of the time"
        # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
        # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        consume+=("$(awk -F', ' '{printf "%.0f", $6}' <<<"$out")")
        fetch+=("$(awk -F', ' '{printf "%.0f", $10}' <<<"$out")")
        cpu+=("$(per_million $((after - before)))")
    done
    stop_profile
    SIDE[$name,perf-test,consume,rps]=$(median "${consume[@]}")
    SIDE[$name,perf-test,consume,cpu]=$(median "${cpu[@]}")
    SIDE[$name,perf-test,fetch-only,rps]=$(median "${fetch[@]}")
    SIDE[$name,perf-test,fetch-only,cpu]="-"
    SIDE[$name,latency]=$(median "${latency[@]}")
    SIDE[$name,io_wait]=$(median "${io_wait[@]}")
    SIDE[$name,rss]=$(peak_rss_mib "$pid")
    SIDE[$name,load]=$(cut -d' ' -f1-3 /proc/loadavg)
}

# start_profile NAME PID: with BENCH_PROFILE=DIR, `perf record -g` on the logpipe broker during the
# kafka-consumer-perf-test runs (DIR/fetch.perf.data; `perf report -i` it afterwards). perf takes CPU from
# the same cores: the rates of a profiled run are not comparable with Kafka's.
PROFILE_PID=""
start_profile() {
    [ -n "${BENCH_PROFILE:-}" ] && [ "$1" = logpipe ] || return 0
    mkdir -p "$BENCH_PROFILE"
    perf record -g -F 1999 -p "$2" -o "$BENCH_PROFILE/fetch.perf.data" >/dev/null 2>"$BENCH_PROFILE/perf.err" &
    PROFILE_PID=$!
}
stop_profile() {
    [ -n "$PROFILE_PID" ] || return 0
    kill -INT "$PROFILE_PID" 2>/dev/null || true
    wait "$PROFILE_PID" 2>/dev/null || true
    PROFILE_PID=""
}

# start_kafka DIR: a single-node KRaft Apache Kafka with its defaults on free ports; sets KAFKA_PID and
# KAFKA_BOOTSTRAP.
start_kafka() {
    local dir=$1 port cport
    mkdir -p "$dir/data"
    read -r port cport < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    {
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@127.0.0.1:$cport"
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "controller.listener.names=CONTROLLER"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "log.dirs=$dir/data"
        echo "offsets.topic.replication.factor=1"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        echo "group.initial.rebalance.delay.ms=0"
    } >"$dir/server.properties"
    java -cp "$KAFKA_CP" kafka.tools.StorageTool format \
        -t "$(java -cp "$KAFKA_CP" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1 || die "kafka storage format failed: $(tail -3 "$dir/format.log")"
    # kafka-server-start.sh's defaults: a 1 GiB heap and G1.
    start_process "$dir/kafka" java -Xmx1G -Xms1G -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Dlog4j2.configurationFile="$ROOT/tests/peers/log4j2.properties" -cp "$KAFKA_CP" kafka.Kafka "$dir/server.properties"
    KAFKA_PID=$STARTED_PID
    KAFKA_BOOTSTRAP="127.0.0.1:$port"
    # Its INFO log (tests/peers/log4j2.properties) says when the broker is serving.
    wait_line "$dir/kafka.err" 'Kafka Server started' "$KAFKA_PID" kafka 120 >/dev/null
    log "kafka pid $KAFKA_PID on $KAFKA_BOOTSTRAP"
}

side_by_side() {
    [ -d "$ROOT/.peers/kafka/libs" ] || die "$ROOT/.peers/kafka is missing; run scripts/peers.sh"
    log "side by side: logpipe (fsync before ack)"
    side_phases logpipe "$BROKER_PID" "$BOOTSTRAP"
    stop_process "$BROKER_PID"
    log "side by side: Apache Kafka 4.4 (its defaults: no fsync)"
    start_kafka "$RUN_DIR/kafka"
    side_phases kafka "$KAFKA_PID" "$KAFKA_BOOTSTRAP"
    stop_process "$KAFKA_PID"
}

print_side_by_side() {
    local tool phase lp kf lc kc
    echo
    echo "side by side, each broker alone, $RECORDS x $SIZE B, $PARTITIONS partitions, acks=all: logpipe fsyncs"
    echo "before acknowledging; Apache Kafka 4.4 runs with its defaults (1 GiB heap, no fsync: the OS flushes)"
    echo
    printf '%-10s %-10s %12s %12s %7s %14s %12s %7s\n' "load tool" "phase" "logpipe r/s" "Kafka r/s" "ratio" \
        "logpipe CPU/M" "Kafka CPU/M" "ratio"
    for tool in rdkafka perf-test; do
        for phase in produce consume fetch-only; do
            [ "$tool" = rdkafka ] && [ "$phase" = fetch-only ] && continue
            lp=${SIDE[logpipe,$tool,$phase,rps]} kf=${SIDE[kafka,$tool,$phase,rps]}
            lc=${SIDE[logpipe,$tool,$phase,cpu]} kc=${SIDE[kafka,$tool,$phase,cpu]}
            printf '%-10s %-10s %12s %12s %7s %14s %12s %7s\n' "$tool" "$phase" "$lp" "$kf" \
                "$(side_ratio "$lp" "$kf")" "$lc" "$kc" "$(side_ratio "$lc" "$kc")"
        done
    done
    echo "(perf-test consume: the median of $CONSUME_RUNS kafka-consumer-perf-test runs; fetch-only: its fetch.nMsg.sec,"
    echo " i.e. without the group join)"
    echo "kafka-consumer-perf-test's own metrics (median run): mean fetch latency logpipe ${SIDE[logpipe,latency]} ms," \
        "Kafka ${SIDE[kafka,latency]} ms (ratio $(side_ratio "${SIDE[logpipe,latency]}" "${SIDE[kafka,latency]}"));" \
        "waiting on the network ${SIDE[logpipe,io_wait]} % / ${SIDE[kafka,io_wait]} % of its time"
    echo "load average (1, 5, 15 min) after each broker's phases: logpipe ${SIDE[logpipe,load]}," \
        "Kafka ${SIDE[kafka,load]}"
    echo "peak RSS: logpipe ${SIDE[logpipe,rss]} MiB, Kafka ${SIDE[kafka,rss]} MiB," \
        "ratio $(side_ratio "${SIDE[logpipe,rss]}" "${SIDE[kafka,rss]}")"
    echo "(CPU/M = broker CPU seconds per million records; goals: r/s ratio >= 1.0, CPU ratio <= 0.5, RSS ratio <= 0.1)"
}
