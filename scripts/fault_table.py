"""Prints the tables of fault runs from a JSON-lines results file (tests/python/test_power_loss.py and
test_kill_matrix.py append one line per run when LOGPIPE_POWER_LOSS_RESULTS / LOGPIPE_KILL_MATRIX_RESULTS
name it). Used by scripts/test.sh and scripts/soak.sh:  python scripts/fault_table.py RESULTS.jsonl"""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cuts = [r for r in rows if r["test"] in ("broker", "appliance")]
kills = [r for r in rows if r["test"] == "kill_matrix"]
if cuts:
    print()
    print("| power cut (kill -9 + drop unsynced + restart) | runs | passed | failed | acked records at the cut "
          "| lines | agent resends | failing seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for test in ("broker", "appliance"):
        rs = [r for r in cuts if r["test"] == test]
        ok = [r for r in rs if r["ok"]]
        bad = [str(r["seed"]) for r in rs if not r["ok"]]

        def total(key):
            return f"{sum(r[key] for r in ok):,}" if ok and key in ok[0] else "–"
        print(f"| {test} | {len(rs)} | {len(ok)} | {len(bad)} | {total('acked_at_cut')} | {total('lines')} "
              f"| {total('resent_events')} | {' '.join(bad) or '–'} |")
if kills:
    print()
    print("| kill matrix (kill -9, restart at once) | kills survived | lines | lines lost | duplicate documents "
          "| misplaced |")
    print("|---|---|---|---|---|---|")
    for part, label in (("agent", "agent"), ("broker", "broker"), ("indexer", "indexer"),
                        ("whole", "whole process (`logpipe run`)")):
        if any(part in r["kills"] for r in kills):
            print(f"| {label} | {sum(r['kills'].get(part, 0) for r in kills)} | | | | |")
    copytruncates = sum(1 for r in kills if r.get("copytruncate_at") is not None)
    print(f"| total ({len(kills)} rounds, {copytruncates} copytruncate rotations, "
          f"seeds {' '.join(str(r['seed']) for r in kills)}) "
          f"| {sum(sum(r['kills'].values()) for r in kills)} | {sum(r['lines'] for r in kills):,} "
          f"| {sum(r['lost'] for r in kills):,} | {sum(r['duplicates'] for r in kills):,} "
          f"| {sum(r['misplaced'] for r in kills):,} |")
