"""Word errors and time per encoder-window rule on the synthesized set (bench/wer_set.py), from
the JSON lines of `steady-bench window` and of bench/faster_whisper_bench.py (engine rows).

usage: window_summary.py SET.tsv RESULTS.jsonl...
prints a Markdown table: rule, then per split (tune, heldout, long) word errors / words and
seconds in all.
"""
import json
import sys

from summarize import errors, words


def main():
    set_path, results = sys.argv[1], sys.argv[2:]
    refs, splits = {}, {}
    for line in open(set_path):
        path, split, _voice, _rate, _seconds, text = line.rstrip("\n").split("\t")
        refs[path], splits[path] = text, split
    table = {}
    order = []
    for result in results:
        for line in open(result):
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            rule = r.get("rule") or r.get("engine")
            if r["audio"] not in refs:
                continue
            split = splits[r["audio"]]
            seconds = r["seconds"] if "seconds" in r else min(r["times"])
            if rule not in table:
                table[rule] = {}
                order.append(rule)
            cell = table[rule].setdefault(split, [0, 0, 0.0, 0])
            cell[0] += errors(refs[r["audio"]], r["text"])
            cell[1] += len(words(refs[r["audio"]]))
            cell[2] += seconds
            cell[3] += 1
    columns = [s for s in ("tune", "heldout", "long-tune", "long") if any(s in t for t in table.values())]
    print("| rule / engine | " + " | ".join(f"{c}: errors / words (WER), seconds" for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for rule in order:
        cells = []
        for c in columns:
            if c in table[rule]:
                e, w, t, n = table[rule][c]
                cells.append(f"{e} / {w} ({e / max(1, w):.3f}), {t:.1f} s ({n} clips)")
            else:
                cells.append("-")
        print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
