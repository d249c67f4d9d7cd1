#!/usr/bin/env bash
# Long fault runs that scripts/test.sh runs only a few times each, with a table of the outcome.
#
#   scripts/soak.sh                 50 power cuts of the broker and 50 of the whole appliance (lazyfs),
#                                   then the kill matrix: 50 kill -9 each of agent, broker and indexer
#   SOAK_RUNS=10 scripts/soak.sh    fewer
#
# Each run prints its seed first; replay one with
#   LOGPIPE_POWER_LOSS_SEED=<seed> .venv/bin/pytest -q -s tests/python/test_power_loss.py -k broker|appliance
# Needs what scripts/test.sh installs (run it once first) and root with /dev/fuse for lazyfs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS="${SOAK_RUNS:-50}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

[ -x "$ROOT/.venv/bin/pytest" ] || { echo "error: no .venv: run scripts/test.sh once first" >&2; exit 1; }
cargo build --bin logpipe
cargo build -p logpipe-lazyfs --bin lazyfs

RESULTS=$(mktemp -t logpipe-soak.XXXXXX.jsonl)
export LOGPIPE_BIN="$TARGET_DIR/debug/logpipe" LAZYFS_BIN="$TARGET_DIR/debug/lazyfs"
export PYTHONDONTWRITEBYTECODE=1 LOGPIPE_POWER_LOSS_RUNS="$RUNS" LOGPIPE_POWER_LOSS_RESULTS="$RESULTS"

status=0
"$ROOT/.venv/bin/pytest" -q -s tests/python/test_power_loss.py -o timeout=0 || status=$?
# The kill matrix: 10 rounds of 5 kills each of agent, broker and indexer (50 each).
LOGPIPE_KILL_MATRIX=1 LOGPIPE_KILL_MATRIX_ROUNDS="${SOAK_KILL_ROUNDS:-$(( (RUNS + 4) / 5 ))}" \
    LOGPIPE_KILL_MATRIX_RESULTS="$RESULTS" "$ROOT/.venv/bin/pytest" -q -s tests/python/test_kill_matrix.py -o timeout=0 \
    || status=$?

"$ROOT/.venv/bin/python" - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print()
print("| power cut (kill -9 + drop unsynced + restart) | runs | passed | failed | acked records at the cut | lines | agent resends | failing seeds |")
print("|---|---|---|---|---|---|---|---|")
kills = [r for r in rows if r["test"] == "kill_matrix"]
for test in ("broker", "appliance"):
    rs = [r for r in rows if r["test"] == test]
    ok = [r for r in rs if r["ok"]]
    bad = [str(r["seed"]) for r in rs if not r["ok"]]
    def total(key):
        return f"{sum(r[key] for r in ok):,}" if ok and key in ok[0] else "–"
    print(f"| {test} | {len(rs)} | {len(ok)} | {len(bad)} | {total('acked_at_cut')} | {total('lines')} "
          f"| {total('resent_events')} | {' '.join(bad) or '–'} |")
if kills:
    print()
    print("| kill matrix (kill -9, restart at once) | kills survived | lines | lines lost | duplicate documents | misplaced |")
    print("|---|---|---|---|---|---|")
    for part in ("agent", "broker", "indexer"):
        print(f"| {part} | {sum(r['kills'][part] for r in kills)} | | | | |")
    print(f"| total | {sum(sum(r['kills'].values()) for r in kills)} | {sum(r['lines'] for r in kills):,} "
          f"| {sum(r['lost'] for r in kills):,} | {sum(r['duplicates'] for r in kills):,} | {sum(r['misplaced'] for r in kills):,} |")
PY
rm -f "$RESULTS"
exit "$status"
