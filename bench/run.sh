#!/usr/bin/env bash
# The speed benchmark (docs/benchmarks.md): on this machine, in one invocation, for each thread
# count, the same audio through
#   - whisper-rs 0.16 (bench/whisper-rs-bench, built outside the workspace),
#   - whisper-steady through whisper-rs's API (the same source, bench/common/compat.rs),
#   - whisper-steady's Recognizer with its defaults (bench/steady-bench),
#   - faster-whisper float32 and int8 (bench/faster_whisper_bench.py),
# then prints a table of medians with the ratios, the WER of each on jfk.wav and on espeak-ng
# sentences, and each process's peak memory. Greedy decoding, English, models loaded once per
# process and not timed.
#
#   bench/run.sh                 # threads 1 and 2, 5 runs each
#   BENCH_THREADS="2" BENCH_RUNS=7 bench/run.sh --append   # also append to bench/RESULTS.md
#
# Needs WHISPER_STEADY_TEST_MODEL (ggml tiny.en) and WHISPER_STEADY_TEST_MODEL_CT2 (the same
# weights as a CTranslate2 folder); scripts/fetch-test-model.sh provides both. BENCH_MODEL
# overrides the ggml model of the whisper-steady runs (e.g. a quantized one); whisper-rs always
# gets WHISPER_STEADY_TEST_MODEL. Installs faster-whisper and av with pip if missing.
#
# Everything is built the way a user builds it: `cargo build --release`, with the environment as
# it is (no RUSTFLAGS of our own), and the table starts with the CPU flags ggml got.
# BENCH_SET=0 skips the synthesized set (held-out clips and long recordings, several minutes).
# With WHISPER_STEADY_TEST_VAD_MODEL (scripts/fetch-vad-model.sh) the set also gets the
# Recognizer with `vad_model` set (long audio in chunks at silences, on 2 states).
# BENCH_PORTABLE=1 adds rows for the portable build (WHISPER_STEADY_CPU=portable, in its own
# target folder), to show what shipping one binary to every x86-64 machine costs.
set -euo pipefail
cd "$(dirname "$0")/.."

threads="${BENCH_THREADS:-1 2}"
runs="${BENCH_RUNS:-5}"
append=0
[ "${1:-}" = "--append" ] && append=1
model="${WHISPER_STEADY_TEST_MODEL:?set WHISPER_STEADY_TEST_MODEL (scripts/fetch-test-model.sh)}"
ct2="${WHISPER_STEADY_TEST_MODEL_CT2:?set WHISPER_STEADY_TEST_MODEL_CT2 (scripts/fetch-test-model.sh)}"
steady_model="${BENCH_MODEL:-$model}"
jfk="${BENCH_AUDIO:-../shared/audio/jfk.wav}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '[bench] %s\n' "$*" >&2; }

say "building (cargo build --release, as a user builds; RUSTFLAGS='${RUSTFLAGS:-}')"
cargo build --release --quiet -p whisper-steady-bench
steady="${CARGO_TARGET_DIR:-target}/release/steady-bench"
system_info=$("$steady" system-info)
say "$system_info"
portable=""
if [ "${BENCH_PORTABLE:-0}" = 1 ]; then
  say "building the portable variant (WHISPER_STEADY_CPU=portable)"
  WHISPER_STEADY_CPU=portable cargo build --release --quiet -p whisper-steady-bench \
    --target-dir target/bench-portable
  portable=target/bench-portable/release/steady-bench
  say "$("$portable" system-info | head -n 1)"
fi
cargo build --release --quiet --manifest-path bench/whisper-rs-bench/Cargo.toml \
  --target-dir target/whisper-rs-bench
upstream=target/whisper-rs-bench/release/whisper-rs-bench
python3 -c 'import faster_whisper, av' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check 'faster-whisper==1.2.1' 'ctranslate2==4.8.5' 'av'

say "speech: jfk.wav and espeak-ng sentences"
sentences=(
  "The quick brown fox jumps over the lazy dog."
  "Please call me tomorrow morning at the office."
  "We are going to the park after school."
  "My sister lives in a small house near the river."
  "Thank you very much for your help yesterday."
  "Can you tell me the way to the library?"
  "He opened the window and looked at the sea."
  "It is important to drink water every day."
)
audio=("$jfk")
: > "$work/references.tsv"
printf '%s\t%s\n' "$jfk" "And so my fellow Americans ask not what your country can do for you ask what you can do for your country" >> "$work/references.tsv"
for i in "${!sentences[@]}"; do
  espeak-ng -v en-gb -s 130 -w "$work/raw$i.wav" "${sentences[$i]}"
  sox -D "$work/raw$i.wav" -r 16000 -c 1 -b 16 "$work/s$i.wav"
  audio+=("$work/s$i.wav")
  printf '%s\t%s\n' "$work/s$i.wav" "${sentences[$i]}" >> "$work/references.tsv"
done

# Each engine: jfk.wav $runs times (timed, peak memory of that process), then every sentence
# once (for the WER only).
measure() { # name, then the command up to (not including) RUNS AUDIO...
  local name="$1"; shift
  say "$name"
  /usr/bin/time -f '%M' -o "$work/$name.mem" "$@" "$runs" "$jfk" > "$work/$name.jsonl"
  "$@" 1 "${audio[@]:1}" >> "$work/$name.jsonl"
}
for t in $threads; do
  measure "whisper-rs-$t" "$upstream" "$model" "$t"
  measure "compat-$t" "$steady" compat "$steady_model" "$t"
  measure "recognizer-$t" "$steady" recognizer "$steady_model" "$t"
  measure "recognizer-fit-$t" "$steady" recognizer --fit-window "$steady_model" "$t"
  if [ -n "$portable" ]; then
    measure "compat-portable-$t" "$portable" compat "$steady_model" "$t"
    measure "recognizer-portable-$t" "$portable" recognizer "$steady_model" "$t"
  fi
  measure "fw-float32-$t" python3 bench/faster_whisper_bench.py "$ct2" float32 "$t"
  measure "fw-int8-$t" python3 bench/faster_whisper_bench.py "$ct2" int8 "$t"
done

table=$(python3 bench/summarize.py "$work" "$jfk" "$threads")

# The synthesized set (bench/wer_set.py): word errors on the held-out clips (never tuned on) and
# on two long recordings with pauses (60-120 s, timed, best of 2), at the last thread count.
set_table=""
if [ "${BENCH_SET:-1}" = 1 ]; then
  t="${threads##* }"
  say "synthesized set: held-out clips and long recordings, $t threads"
  python3 bench/wer_set.py "$work/set" 2>&1 | grep -v '^sox WARN' >&2
  heldout=($(awk -F'\t' '$2 == "heldout" {print $1}' "$work/set/set.tsv"))
  long=($(awk -F'\t' '$2 == "long" {print $1}' "$work/set/set.tsv"))
  set_measure() { # name, then the command up to (not including) RUNS AUDIO...
    local name="$1"; shift
    say "set: $name"
    { "$@" 1 "${heldout[@]}"; "$@" 2 "${long[@]}"; } | sed "s/\"engine\":\"[^\"]*\"/\"engine\":\"$name\"/" \
      > "$work/set-$name.jsonl"
  }
  set_measure "whisper-rs" "$upstream" "$model" "$t"
  set_measure "whisper-steady-whisper-rs-API" "$steady" compat "$steady_model" "$t"
  set_measure "Recognizer-defaults" "$steady" recognizer "$steady_model" "$t"
  set_measure "Recognizer-fitted-window" "$steady" recognizer --fit-window "$steady_model" "$t"
  if [ -n "${WHISPER_STEADY_TEST_VAD_MODEL:-}" ]; then
    set_measure "Recognizer-VAD-chunks" "$steady" recognizer --vad="$WHISPER_STEADY_TEST_VAD_MODEL" \
      "$steady_model" "$t"
  fi
  set_measure "faster-whisper-float32" python3 bench/faster_whisper_bench.py "$ct2" float32 "$t"
  set_measure "faster-whisper-int8" python3 bench/faster_whisper_bench.py "$ct2" int8 "$t"
  set_measure "faster-whisper-batched-float32" python3 bench/faster_whisper_bench.py "$ct2" batched-float32 "$t"
  set_measure "faster-whisper-batched-int8" python3 bench/faster_whisper_bench.py "$ct2" batched-int8 "$t"
  set_table=$(cd bench && python3 window_summary.py "$work/set/set.tsv" "$work"/set-*.jsonl)
fi

echo "$system_info"
echo
echo "$table"
if [ -n "$set_table" ]; then
  echo
  echo "$set_table"
fi
if [ "$append" = 1 ]; then
  {
    echo
    echo "## $(date -u +%Y-%m-%d): bench/run.sh at $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
    echo
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
      "ggml model $(basename "$steady_model") for whisper-steady, $(basename "$model") for whisper-rs;" \
      "$runs runs per engine and thread count; built with \`cargo build --release\`, RUSTFLAGS='${RUSTFLAGS:-}'."
    echo
    echo "$system_info" | sed 's/^/- /'
    echo
    echo "$table"
    if [ -n "$set_table" ]; then
      echo
      echo "Synthesized set (bench/wer_set.py), $t threads: word errors on held-out clips and long recordings; seconds are the sum over clips (long: best of 2 runs)."
      echo
      echo "$set_table"
    fi
  } >> bench/RESULTS.md
  say "appended to bench/RESULTS.md"
fi
