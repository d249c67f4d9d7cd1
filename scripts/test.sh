#!/usr/bin/env bash
# The README's test command, and what CI runs (via .ci/run) on a fresh Debian machine.
#
#   scripts/test.sh                    everything: fmt and clippy checks, cargo build, unit/integration tests,
#                                      the python interop suite
#   scripts/test.sh -m 'not groups'    extra arguments go to pytest (select, -x, -k kcat, ...)
#   LOGPIPE_TEST_PYTHON_ONLY=1 scripts/test.sh -k kcat
#                                      build only the binary and run the python suite
#   LOGPIPE_TEST_SETUP_ONLY=1 scripts/test.sh
#                                      only install kcat, .venv/ and the peers in .peers/, then stop
#
# Installs what is missing, once: the third-party peers (scripts/peers.sh: Apache Kafka and its tools,
# the Java clients, an OpenSearch 2.19 node, Debian's uap-core and the DB-IP Lite data), Debian's chromium
# and playwright-core for the web console's browser tests, Debian's faketime/libfaketime for the
# clock-step tests, Debian's kcat (the 1.7.1 / librdkafka 2.0.2 one we must stay compatible with),
# Debian's nginx-light (the TLS and auth front of Elasticsearch in the tests) and a
# virtualenv at .venv/ with the pinned clients from
# tests/python/requirements.txt. A second run skips both.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install kcat and python3-venv by hand"
    SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install these by hand: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_kcat() {
    if ! command -v kcat >/dev/null; then
        log "installing kcat (Debian package)"
        apt_install kcat
    fi
    kcat -V 2>&1 | grep -m1 -i 'version' >&2 || true
}

# librdkafka is built with TLS (and so SCRAM) against the system OpenSSL: it needs pkg-config and
# libssl-dev. The security tests make their certificates with the openssl command.
ensure_tls_deps() {
    local missing=()
    command -v openssl >/dev/null || missing+=(openssl)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    if ! pkg-config --exists openssl 2>/dev/null; then
        missing+=(libssl-dev)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (Debian packages)"
        apt_install "${missing[@]}"
    fi
}

# Debian's nginx (the light flavour: ssl, map, auth_basic, proxy) is the TLS and auth front of
# Elasticsearch in test_es_auth.py. Debian's stable package is the pin: the release fixes its version.
ensure_nginx() {
    if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
        log "installing nginx-light (Debian package)"
        apt_install nginx-light
    fi
}

pick_python() {
    local p
    for p in python3.11 python3; do
        if command -v "$p" >/dev/null; then
            echo "$p"
            return
        fi
    done
    die "python3 not found"
}

ensure_venv() {
    local py stamp want
    py=$(pick_python)
    # The stamp ties the venv to the requirements file and the interpreter that built it.
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$py" -c 'import sys; print(sys.version.split()[0])')"
    stamp="$VENV/.logpipe-requirements"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$VENV/bin/python" -c 'import confluent_kafka, kafka, pytest' 2>/dev/null; then
        return
    fi
    log "creating $VENV with tests/python/requirements.txt"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 ships without ensurepip unless python3-venv is installed.
        rm -rf "$VENV"
        local ver
        ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python${ver}-venv" || apt_install python3-venv
        "$py" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary -r "$REQUIREMENTS"
    echo "$want" >"$stamp"
}

# lazyfs (tests/lazyfs, the power-loss tests' file system) mounts through /dev/fuse: directly as root,
# through Debian's fusermount3 otherwise.
ensure_fuse() {
    [ -c /dev/fuse ] || die "/dev/fuse is missing: the power-loss tests need FUSE (modprobe fuse, or run the container with --device /dev/fuse)"
    if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; then
        log "installing fuse3 (Debian package) for fusermount3"
        apt_install fuse3
    fi
}

# The clock-step tests (tests/python/test_clock_steps.py) run the binary under Debian's libfaketime
# (0.9.10 in bookworm): LD_PRELOAD of libfaketime.so.1 with a timestamp file the test rewrites mid-run,
# preceded by tests/faketime/c11_waits.c, which the test compiles with `cc` (already needed to build
# logpipe) so that librdkafka's C11 timed waits follow the faked clock too.
FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
ensure_faketime() {
    if [ ! -f "$FAKETIME_LIB" ] || ! command -v faketime >/dev/null; then
        log "installing faketime and libfaketime (Debian packages) for the clock-step tests"
        apt_install faketime libfaketime
    fi
}

# The web console's browser tests (tests/python/test_web_console.py): Debian's chromium, driven by
# playwright-core pinned in tests/browser/package-lock.json, installed into the ignored
# tests/browser/node_modules.
ensure_browser() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (Debian packages) for the browser tests"
        apt_install "${missing[@]}"
    fi
    local stamp="$ROOT/tests/browser/node_modules/.logpipe-lock"
    local want
    want=$(sha256sum "$ROOT/tests/browser/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "npm ci in tests/browser (playwright-core)"
        (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --ignore-scripts)
        echo "$want" >"$stamp"
    fi
}

ensure_kcat
ensure_browser
ensure_fuse
ensure_faketime
ensure_tls_deps
ensure_nginx
ensure_venv
log "peers (scripts/peers.sh)"
scripts/peers.sh
"$VENV/bin/python" -c 'import confluent_kafka as c; from importlib.metadata import version as v
print("confluent-kafka", v("confluent-kafka"), "(librdkafka", c.libversion()[0] + ") | kafka-python", v("kafka-python"), "| pytest", v("pytest"))' >&2
if [ "${LOGPIPE_TEST_SETUP_ONLY:-0}" = 1 ]; then
    exit 0
fi

if [ "${LOGPIPE_TEST_PYTHON_ONLY:-0}" = 1 ]; then
    log "cargo build --bin logpipe, -p logpipe-lazyfs"
    cargo build --bin logpipe
    cargo build -p logpipe-lazyfs --bin lazyfs
else
    log "cargo fmt --check, cargo clippy -D warnings"
    cargo fmt --all -- --check || die "code is not formatted: run cargo fmt --all"
    cargo clippy --workspace --all-targets -- -D warnings

    log "cargo build --workspace --all-targets"
    cargo build --workspace --all-targets

    if cargo nextest --version >/dev/null 2>&1; then
        log "cargo nextest run --workspace"
        # --no-tests=warn: a workspace that has no tests yet is not a failure (older nextest lacks it).
        no_tests=()
        # (help text captured first: with pipefail, `grep -q` closing the pipe early would read as "no")
        if [[ "$(cargo nextest run --help 2>/dev/null)" == *--no-tests* ]]; then
            no_tests=(--no-tests=warn)
        fi
        cargo nextest run --workspace "${no_tests[@]}"
        # nextest does not run doctests.
        log "cargo test --workspace --doc"
        cargo test --workspace --doc
    else
        log "cargo-nextest not found; cargo test --workspace"
        cargo test --workspace
    fi
fi

log "pytest tests/python"
export LOGPIPE_BIN="$TARGET_DIR/debug/logpipe"
[ -x "$LOGPIPE_BIN" ] || die "$LOGPIPE_BIN was not built"
# No .pyc/__pycache__ litter in the source tree.
export PYTHONDONTWRITEBYTECODE=1
# The fault tests (power cuts, the kill matrix: 5 each) append their outcome here; the table follows.
FAULT_RESULTS=$(mktemp -t logpipe-faults.XXXXXX.jsonl)
trap 'rm -f "$FAULT_RESULTS"' EXIT
export LOGPIPE_POWER_LOSS_RESULTS="$FAULT_RESULTS" LOGPIPE_KILL_MATRIX_RESULTS="$FAULT_RESULTS"
status=0
"$VENV/bin/pytest" -q tests/python "$@" || status=$?
"$VENV/bin/python" "$ROOT/scripts/fault_table.py" "$FAULT_RESULTS"
[ "$status" -eq 0 ] || exit "$status"

log "all tests passed"
