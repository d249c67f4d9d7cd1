#!/usr/bin/env bash
# Fetches the third-party peers the tests run against into .peers/ (ignored), pinned, once.
#
#   scripts/peers.sh            fetch what is missing or whose pin changed; print where each one is
#
# Each peer is a directory under tests/peers/ with a pom.xml that pins it. Its jars and their
# dependencies land in .peers/<name>/libs, and a stamp (the pom's hash) makes a second run skip it.
# Run a peer with `java -cp '.peers/<name>/libs/*' <main class>`; tests/python/peers.py does that.
#
# Go programs under tests/go/<name>/ (clients others wrote, such as Filebeat's sarama, pinned by their
# go.mod and go.sum) are built into .peers/bin/<name> the same way, stamped by a hash of their sources.
#
# Needs Java 17+, Maven and Go; on a Debian machine without them, installs them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PEERS="$ROOT/.peers"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_java_and_maven() {
    if command -v java >/dev/null && command -v javac >/dev/null && command -v mvn >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "java, javac and mvn are needed for the peers; install a JDK 17+ and Maven"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing a JDK and Maven (Debian packages)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        default-jdk-headless maven
}

# fetch_maven_peer NAME: tests/peers/NAME/pom.xml -> .peers/NAME/libs
fetch_maven_peer() {
    local name=$1 pom="$ROOT/tests/peers/$1/pom.xml" dest="$PEERS/$1" want
    [ -f "$pom" ] || die "no $pom"
    want=$(sha256sum "$pom" | cut -d' ' -f1)
    if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$want" ]; then
        return
    fi
    log "fetching peer $name (tests/peers/$name/pom.xml) from Maven Central"
    rm -rf "$dest"
    mkdir -p "$dest"
    # A failed download is retried once: Maven Central sometimes resets a connection.
    local attempt
    for attempt in 1 2; do
        if mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$dest/libs" >"$dest/mvn.log" 2>&1; then
            echo "$want" >"$dest/.stamp"
            return
        fi
        [ "$attempt" = 2 ] || log "maven failed for $name; retrying once"
    done
    cat "$dest/mvn.log" >&2
    die "could not fetch peer $name; see the Maven output above"
}

ensure_go() {
    command -v go >/dev/null && return
    command -v apt-get >/dev/null || die "go is needed to build tests/go/*; install Go 1.22+"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing Go (Debian package)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go
}

# build_go_peer NAME: tests/go/NAME -> .peers/bin/NAME
build_go_peer() {
    local name=$1 src="$ROOT/tests/go/$1" bin="$PEERS/bin/$1" want
    want=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -d' ' -f1)
    if [ -x "$bin" ] && [ -f "$bin.stamp" ] && [ "$(cat "$bin.stamp")" = "$want" ]; then
        return
    fi
    log "building $name (tests/go/$name) with modules from the Go module proxy"
    mkdir -p "$PEERS/bin"
    (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -o "$bin" .) || die "could not build tests/go/$name"
    echo "$want" >"$bin.stamp"
}

ensure_java_and_maven
mkdir -p "$PEERS"
for pom in "$ROOT"/tests/peers/*/pom.xml; do
    fetch_maven_peer "$(basename "$(dirname "$pom")")"
done
ensure_go
for mod in "$ROOT"/tests/go/*/go.mod; do
    build_go_peer "$(basename "$(dirname "$mod")")"
done
java -version 2>&1 | head -1 >&2
go version >&2
for dir in "$PEERS"/*/; do
    [ "$(basename "$dir")" = bin ] && continue
    printf '  %s: %s jars\n' "$(basename "$dir")" "$(find "$dir/libs" -name '*.jar' 2>/dev/null | wc -l)" >&2
done
