# Sourced by bench-broker.sh (--security): the produce throughput cost of TLS and of SASL/SCRAM.
#
# One release broker with three listeners, PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512), on a fresh
# data dir and a throw-away CA made with openssl. The same acks=all produce load (broker_load) runs
# through each listener into its own topic; the table gives records/s and broker CPU seconds per
# million records, and the ratios to PLAINTEXT. Then 50 clients authenticate (SASL_SSL, SCRAM) at once
# while 5 producers run at full speed, and the producers' records/s is compared with the same 5
# producers alone. Last, the SCRAM run again on a broker enforcing ACLs (one prefixed ACL grants the
# bench user its topics), for the cost of the authorization check.
# Needs: BIN, LOAD, RUN_DIR, RECORDS, SIZE, PARTITIONS (bench-broker.sh sets them).

security_phase() {
    local pki="$RUN_DIR/pki" data="$RUN_DIR/secure-data" out ports
    mkdir -p "$pki" "$data"
    log "security: test CA and broker certificate (openssl, EC P-256)"
    (
        cd "$pki"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout ca.key -out ca.pem -subj "/CN=bench CA" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout broker.key \
            -out broker.csr -subj "/CN=localhost" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile broker.ext -out broker.pem 2>/dev/null
    )
    cat >"$RUN_DIR/secure.toml" <<EOT
[broker]
listeners = ["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0", "SASL_SSL://127.0.0.1:0"]
log_dirs = "$data"
num_partitions = $PARTITIONS
group_initial_rebalance_delay_ms = 0
ssl_certificate_location = "$pki/broker.pem"
ssl_key_location = "$pki/broker.key"
# A benchmark of transport costs, not of ACLs: every user may do everything.
allow_everyone_if_no_acl_found = true
EOT
    echo "bench-password" | "$BIN" users add bench --mechanism SCRAM-SHA-512 --password-stdin \
        -c "$RUN_DIR/secure.toml" >/dev/null
    start_server "$RUN_DIR/secure" "secure broker" "$BIN" broker -c "$RUN_DIR/secure.toml"
    SECURE_PID=$STARTED_PID
    # The three "listening on" lines come in listener order; wait until all are there.
    wait_line "$RUN_DIR/secure.out" '^listening on ' "$SECURE_PID" "3 listeners" 30 3 >/dev/null
    mapfile -t ports < <(sed -n 's/^listening on //p' "$RUN_DIR/secure.out")
    local tls=(-X security.protocol=ssl -X "ssl.ca.location=$pki/ca.pem")
    local scram=(-X security.protocol=sasl_ssl -X "ssl.ca.location=$pki/ca.pem" -X sasl.mechanism=SCRAM-SHA-512
        -X sasl.username=bench -X sasl.password=bench-password)
    SEC_ROWS=()
    security_run "PLAINTEXT" "${ports[0]}" sec-plain
    SEC_PLAIN_RPS=$SEC_RPS SEC_PLAIN_CPU=$SEC_CPU
    security_run "SSL" "${ports[1]}" sec-ssl "${tls[@]}"
    SEC_SSL_RPS=$SEC_RPS SEC_SSL_CPU=$SEC_CPU
    security_run "SASL_SSL SCRAM-SHA-512" "${ports[2]}" sec-scram "${scram[@]}"
    SEC_SCRAM_RPS=$SEC_RPS SEC_SCRAM_CPU=$SEC_CPU

    log "security: 5 producers alone, then with 50 clients authenticating (SASL_SSL, SCRAM-SHA-512)"
    local per=$((RECORDS / 5)) i pids=() t0 t1
    t0=$(date +%s.%N)
    for i in 1 2 3 4 5; do
        "$LOAD" --bootstrap "${ports[2]}" --mode produce --topic "sec-alone-$i" --create-topic --partitions 1 \
            --acks all --records "$per" --record-size "$SIZE" "${scram[@]}" >"$RUN_DIR/alone-$i.out" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    t1=$(date +%s.%N)
    SEC_ALONE_RPS=$(awk -v n=$((per * 5)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
    pids=()
    local auth_pids=()
    for i in $(seq 1 50); do
        "$LOAD" --bootstrap "${ports[2]}" --mode produce --topic "sec-auth-$i" --create-topic --partitions 1 \
            --acks all --records 1 --record-size 10 "${scram[@]}" >"$RUN_DIR/auth-$i.out" 2>&1 &
        auth_pids+=($!)
    done
    t0=$(date +%s.%N)
    for i in 1 2 3 4 5; do
        "$LOAD" --bootstrap "${ports[2]}" --mode produce --topic "sec-loaded-$i" --create-topic --partitions 1 \
            --acks all --records "$per" --record-size "$SIZE" "${scram[@]}" >"$RUN_DIR/loaded-$i.out" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    t1=$(date +%s.%N)
    SEC_AUTH_FAILED=0
    for i in "${auth_pids[@]}"; do wait "$i" || SEC_AUTH_FAILED=$((SEC_AUTH_FAILED + 1)); done
    SEC_LOADED_RPS=$(awk -v n=$((per * 5)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
    stop_process "$SECURE_PID"

    # The same SCRAM load with authorization on: Kafka's default (nothing is open without an ACL) and
    # one prefixed ACL granting the bench user its topics, so every request goes through the check.
    log "security: produce acks=all through SASL_SSL SCRAM-SHA-512 with ACLs enforced"
    cat >"$RUN_DIR/secure-acl.toml" <<EOT
[broker]
listeners = ["SASL_SSL://127.0.0.1:0"]
log_dirs = "$RUN_DIR/secure-acl-data"
num_partitions = $PARTITIONS
group_initial_rebalance_delay_ms = 0
ssl_certificate_location = "$pki/broker.pem"
ssl_key_location = "$pki/broker.key"
allow_everyone_if_no_acl_found = false

[[broker.acls]]
principal = "User:bench"
resource_type = "topic"
resource_name = "sec-"
pattern_type = "prefixed"
operations = ["write", "create"]
EOT
    echo "bench-password" | "$BIN" users add bench --mechanism SCRAM-SHA-512 --password-stdin \
        -c "$RUN_DIR/secure-acl.toml" >/dev/null
    start_server "$RUN_DIR/secure-acl" "secure broker with ACLs" "$BIN" broker -c "$RUN_DIR/secure-acl.toml"
    SECURE_PID=$STARTED_PID
    wait_line "$RUN_DIR/secure-acl.out" '^listening on ' "$SECURE_PID" "the listener" 30 >/dev/null
    security_run "SASL_SSL SCRAM + ACLs" "$(sed -n 's/^listening on //p' "$RUN_DIR/secure-acl.out" | head -1)" \
        sec-acl "${scram[@]}"
    SEC_ACL_RPS=$SEC_RPS SEC_ACL_CPU=$SEC_CPU
    stop_process "$SECURE_PID"
}

# security_run LABEL BOOTSTRAP TOPIC [broker_load -X args...]: one acks=all produce; sets SEC_RPS, SEC_CPU.
security_run() {
    local label=$1 bootstrap=$2 topic=$3 before after result
    shift 3
    log "security: produce acks=all through $label"
    before=$(cpu_ticks "/proc/$SECURE_PID/stat")
    result=$(run_result "$label" "$LOAD" --bootstrap "$bootstrap" --mode produce --topic "$topic" --create-topic \
        --acks all --records "$RECORDS" --record-size "$SIZE" --partitions "$PARTITIONS" "$@")
    after=$(cpu_ticks "/proc/$SECURE_PID/stat")
    SEC_RPS=$(kv "$result" rps)
    SEC_CPU=$(awk -v c="$(ticks_to_seconds $((after - before)))" -v n="$RECORDS" 'BEGIN {printf "%.2f", c / (n / 1e6)}')
    SEC_ROWS+=("$(printf '%-26s %12s %9s %12s' "$label" "$SEC_RPS" "$(kv "$result" mbps)" "$SEC_CPU")")
}

print_security() {

    r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
    echo
    echo "security: acks=all produce through each listener of one broker ($RECORDS x $SIZE B)"
    printf '%-26s %12s %9s %12s\n' "listener" "records/s" "MB/s" "CPU s/M rec"
    for row in "${SEC_ROWS[@]}"; do printf '%s\n' "$row"; done
    echo "ratio to PLAINTEXT (records/s): SSL $(r "$SEC_SSL_RPS" "$SEC_PLAIN_RPS"), SASL_SSL SCRAM-SHA-512 $(r "$SEC_SCRAM_RPS" "$SEC_PLAIN_RPS");" \
        "broker CPU per record: SSL $(r "$SEC_SSL_CPU" "$SEC_PLAIN_CPU")x, SCRAM $(r "$SEC_SCRAM_CPU" "$SEC_PLAIN_CPU")x"
    echo "ACLs enforced (SASL_SSL SCRAM-SHA-512): records/s $(r "$SEC_ACL_RPS" "$SEC_SCRAM_RPS") of the same without" \
        "authorization, broker CPU per record $(r "$SEC_ACL_CPU" "$SEC_SCRAM_CPU")x"
    echo "5 SCRAM producers: $SEC_ALONE_RPS records/s alone, $SEC_LOADED_RPS with 50 clients authenticating" \
        "(ratio $(r "$SEC_LOADED_RPS" "$SEC_ALONE_RPS")); authenticating clients that failed: $SEC_AUTH_FAILED"
}
