#!/usr/bin/env bash
# Issue 27 item 3: long recordings, side by side in one run (bench/RESULTS.md, 2026-12-05).
#
#   bench/long_audio.sh SET_DIR [THREADS]
#
# SET_DIR: the output of `python3 bench/wer_set.py SET_DIR` (long-tune and held-out long
# recordings). Needs WHISPER_STEADY_TEST_MODEL (tiny.en f16), WHISPER_STEADY_TEST_VAD_MODEL
# (Silero in ggml, as the server fetches it), WHISPER_STEADY_TEST_MODEL_CT2 (the same weights
# for CTranslate2) and FW_PYTHON (a Python with faster-whisper 1.2.1). Each engine runs each
# recording twice (best of 2; LONG_RUNS sets how many times), one engine at a time; prints one
# JSON line per recording and run set, then a table of word errors and seconds per set
# (bench/long_summary.py).
set -euo pipefail
cd "$(dirname "$0")/.."
set_dir=$1
threads=${2:-2}
runs=${LONG_RUNS:-2}
out=${LONG_OUT:-target/long-audio}
mkdir -p "$out"
steady=target/release/steady-bench
cargo build --release --quiet -p whisper-steady-bench
model=$WHISPER_STEADY_TEST_MODEL
vad=$WHISPER_STEADY_TEST_VAD_MODEL
files() { awk -F'\t' -v s="$1" '$2 == s {print $1}' "$set_dir/set.tsv"; }
mapfile -t tune < <(files long-tune)
mapfile -t held < <(files long)
run() { # NAME COMMAND...
  local name=$1
  shift
  printf '[long] %s\n' "$name" >&2
  { if ((${#tune[@]})); then "$@" "${tune[@]}"; fi; "$@" "${held[@]}"; } | sed "s/\"engine\":\"[^\"]*\"/\"engine\":\"$name\"/" > "$out/$name.jsonl"
}
run full-window-greedy "$steady" recognizer "$model" "$threads" "$runs"
run vad-greedy "$steady" recognizer "$model" "$threads" "$runs" --vad="$vad"
run vad-beam5 "$steady" recognizer "$model" "$threads" "$runs" --vad="$vad" --beam=5 --long-audio=chunks
run full-window-beam5 "$steady" recognizer "$model" "$threads" "$runs" --beam=5
# The server's defaults as it runs them: the speech detector on, beam 5, long audio in whisper's
# windows (`long_audio`'s default under beam search).
run server-defaults "$steady" recognizer "$model" "$threads" "$runs" --vad="$vad" --beam=5
run fw-float32-greedy "$FW_PYTHON" bench/faster_whisper_bench.py "$WHISPER_STEADY_TEST_MODEL_CT2" float32 "$threads" "$runs"
run fw-float32-defaults "$FW_PYTHON" bench/faster_whisper_bench.py "$WHISPER_STEADY_TEST_MODEL_CT2" float32-defaults "$threads" "$runs"
run fw-batched-int8 "$FW_PYTHON" bench/faster_whisper_bench.py "$WHISPER_STEADY_TEST_MODEL_CT2" batched-int8 "$threads" "$runs"
python3 bench/long_summary.py "$set_dir/set.tsv" "$out"/*.jsonl
