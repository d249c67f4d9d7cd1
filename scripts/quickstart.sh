#!/usr/bin/env bash
# The quickstart: builds logpipe, starts the nginx log generator (writing data/logs/) and the appliance
# on pipelines/quickstart.toml (embedded broker, agent, indexer writing data/indices/). Daily index
# files appear in data/indices/ within seconds. Ctrl-C stops both.
#
# LOGPIPE_BIN=path skips the build and uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${LOGPIPE_BIN:-}" ]]; then
    # librdkafka is built against the system OpenSSL (TLS and SASL/SCRAM): pkg-config and the headers.
    if ! { command -v pkg-config >/dev/null && pkg-config --exists openssl; }; then
        echo "quickstart: installing pkg-config and libssl-dev (Debian packages) to build librdkafka" >&2
        sudo=""
        [[ $(id -u) -ne 0 ]] && sudo=sudo
        $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq pkg-config libssl-dev >&2
    fi
    cargo build --release --bin logpipe
    LOGPIPE_BIN=target/release/logpipe
fi

mkdir -p data/logs
"$LOGPIPE_BIN" gen nginx --dir data/logs --rate 200 --rotate-every 300 >/dev/null &
gen=$!
# Its own session, so a Ctrl-C reaches it once (from the trap below), not also from the terminal; a
# second signal would mean "exit at once".
setsid "$LOGPIPE_BIN" run pipelines/quickstart.toml &
run=$!
stopping=0
stop() {
    stopping=1
    kill -TERM "$run" "$gen" 2>/dev/null || true
}
trap stop INT TERM
echo "quickstart: generating nginx logs into data/logs/, indexing into data/indices/ (Ctrl-C stops)" >&2
status=0
wait "$run" || status=$?
# A signal interrupts the first wait (status 128+n); wait again for the appliance's clean shutdown,
# whose exit status is the one that counts.
if [[ $stopping == 1 ]]; then
    status=0
    wait "$run" || status=$?
fi
kill -TERM "$gen" 2>/dev/null || true
wait "$gen" 2>/dev/null || true
exit "$status"
