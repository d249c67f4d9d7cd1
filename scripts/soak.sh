#!/usr/bin/env bash
# Long fault runs that scripts/test.sh runs only a few times each, with a table of the outcome.
#
#   scripts/soak.sh                 50 power cuts of the broker and 50 of the whole appliance (lazyfs),
#                                   then the kill matrix: 50 kill -9 each of agent, broker and indexer as
#                                   separate processes, and 50 of the whole `logpipe run` process
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
LOGPIPE_KILL_MATRIX_LINES="${SOAK_KILL_LINES:-1000000}" LOGPIPE_KILL_MATRIX_ROUNDS="${SOAK_KILL_ROUNDS:-$(( (RUNS + 4) / 5 ))}" \
    LOGPIPE_KILL_MATRIX_RESULTS="$RESULTS" "$ROOT/.venv/bin/pytest" -q -s tests/python/test_kill_matrix.py -o timeout=0 \
    || status=$?
# The whole process (`logpipe run`) killed -9: test_appliance.py's 5 kills over 1,000,000 lines, 10 times (50).
for _ in $(seq "${SOAK_KILL_ROUNDS:-$(( (RUNS + 4) / 5 ))}"); do
    LOGPIPE_KILL_MATRIX_RESULTS="$RESULTS" "$ROOT/.venv/bin/pytest" -q -s tests/python/test_appliance.py \
        -k test_kill9_five_times_under_load -o timeout=0 || status=$?
done

"$ROOT/.venv/bin/python" "$ROOT/scripts/fault_table.py" "$RESULTS"
rm -f "$RESULTS"
exit "$status"
