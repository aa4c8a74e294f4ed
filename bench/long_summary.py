"""Word errors and seconds (best of the runs) per engine on the long-tune and held-out long
recordings, from bench/long_audio.sh's JSON lines; per recording too.

usage: long_summary.py SET_TSV RESULTS.jsonl...
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summarize import errors, words  # noqa: E402


def main():
    refs = {}
    for line in open(sys.argv[1]):
        path, split, _voice, _rate, _seconds, text = line.rstrip("\n").split("\t", 5)
        refs[path] = (split, text)
    print("| engine | long-tune: errors / words, seconds | long (held out): errors / words, seconds | per held-out recording (errors) |")
    print("|---|---|---|---|")
    for results in sys.argv[2:]:
        sums = {"long-tune": [0, 0, 0.0], "long": [0, 0, 0.0]}
        per = []
        engine = None
        for line in open(results):
            r = json.loads(line)
            engine = r["engine"]
            split, ref = refs[r["audio"]]
            e = errors(ref, r["text"])
            s = sums[split]
            s[0] += e
            s[1] += len(words(ref))
            s[2] += min(r["times"])
            if split == "long":
                per.append(f"{os.path.basename(r['audio'])[:-4]} {e}")
        cell = lambda s: f"{s[0]} / {s[1]}, {s[2]:.1f} s"
        print(f"| {engine} | {cell(sums['long-tune'])} | {cell(sums['long'])} | {', '.join(per)} |")


if __name__ == "__main__":
    main()
