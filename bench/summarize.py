"""Summarizes bench/run.sh's measurements as a Markdown table (stdout).

usage: summarize.py WORK_DIR JFK_PATH "THREADS..."
"""
import json
import os
import re
import statistics
import sys

ENGINES = [
    ("whisper-rs", "whisper-rs 0.16"),
    ("compat", "whisper-steady, whisper-rs API"),
    ("recognizer", "whisper-steady, Recognizer defaults"),
    ("recognizer-fit", "whisper-steady, Recognizer, fit_audio_ctx (opt-in)"),
    ("compat-portable", "whisper-steady portable build, whisper-rs API"),
    ("recognizer-portable", "whisper-steady portable build, Recognizer defaults"),
    ("fw-float32", "faster-whisper float32"),
    ("fw-int8", "faster-whisper int8"),
]


def words(text):
    """The words of text as whisper_steady::wer::words counts them: lowercase, split at
    everything that is neither a letter, a digit nor an apostrophe."""
    return [w for w in re.split(r"[^\w']|_", text.lower()) if w]


def errors(ref, hyp):
    """Word errors (substitutions, insertions, deletions) of hyp against ref."""
    r, h = words(ref), words(hyp)
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r):
        prev, row[0] = row[0], i + 1
        for j, hw in enumerate(h):
            cur = min(row[j] + 1, row[j + 1] + 1, prev + (rw != hw))
            prev, row[j + 1] = row[j + 1], cur
    return row[len(h)]


def wer(ref, hyp):
    return errors(ref, hyp) / max(1, len(words(ref)))


def main():
    work, jfk, threads = sys.argv[1], sys.argv[2], sys.argv[3].split()
    refs = dict(line.rstrip("\n").split("\t", 1) for line in open(os.path.join(work, "references.tsv")))
    rows = []
    for t in threads:
        medians = {}
        for key, label in ENGINES:
            path = os.path.join(work, f"{key}-{t}.jsonl")
            if not os.path.exists(path):
                continue
            results = [json.loads(l) for l in open(path) if l.startswith("{")]
            jfk_result = next(r for r in results if r["audio"] == jfk)
            median = statistics.median(jfk_result["times"])
            medians[key] = median
            others = [r for r in results if r["audio"] != jfk]
            ref_words = sum(len(words(refs[r["audio"]])) for r in others) or 1
            sent_wer = sum(wer(refs[r["audio"]], r["text"]) * len(words(refs[r["audio"]])) for r in others) / ref_words
            mem = int(open(os.path.join(work, f"{key}-{t}.mem")).read().split()[-1]) / 1024
            rows.append((t, label, key, median, wer(refs[jfk], jfk_result["text"]), sent_wer, mem))
        for i, row in enumerate(rows):
            if row[0] == t:
                rows[i] = row + (medians.get("whisper-rs"), medians.get("fw-float32"))
    print("| threads | engine | jfk median | vs whisper-rs | vs faster-whisper f32 | WER jfk | WER espeak | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for t, label, key, median, wjfk, wsent, mem, base_rs, base_fw in rows:
        ratio_rs = f"{median / base_rs:.2f}" if base_rs else "-"
        ratio_fw = f"{median / base_fw:.2f}" if base_fw else "-"
        print(f"| {t} | {label} | {median:.3f} s | {ratio_rs} | {ratio_fw} | {wjfk:.3f} | {wsent:.3f} | {mem:.0f} MiB |")


if __name__ == "__main__":
    main()
