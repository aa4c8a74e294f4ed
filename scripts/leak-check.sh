#!/usr/bin/env bash
# Leak check: examples/leak_check.rs (100 transcriptions through the safe API, 100 through the
# Recognizer; contexts, states and the recognizer created and dropped) under LeakSanitizer,
# preloaded into the dev build (gcc's liblsan, no rebuild with sanitizer flags needed; whisper.cpp
# is built as Release in every profile, and the dev build shares the test build's artifacts).
# Fails if LeakSanitizer reports any leak not listed in scripts/lsan.supp.
#
#   scripts/leak-check.sh MODEL.bin [ITERATIONS]
#
# MODEL defaults to $WHISPER_STEADY_TEST_MODEL; the audio is ../shared/audio/jfk.wav.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-${WHISPER_STEADY_TEST_MODEL:?give a model path or set WHISPER_STEADY_TEST_MODEL}}
iterations=${2:-100}
audio=../shared/audio/jfk.wav
lsan=${LSAN_LIB:-$(gcc -print-file-name=liblsan.so.0 2>/dev/null || true)}
if [[ ! -f "$lsan" ]]; then
  lsan=/usr/lib/x86_64-linux-gnu/liblsan.so.0
fi
[[ -f "$lsan" ]] || { echo "FAIL: liblsan.so.0 not found (set LSAN_LIB)" >&2; exit 1; }

cargo build --quiet --example leak_check
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
binary="$target_dir/debug/examples/leak_check"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
LD_PRELOAD="$lsan" \
LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=1:exitcode=23:report_objects=0" \
GGML_NO_BACKTRACE=1 \
  "$binary" "$model" "$audio" "$iterations" >"$tmp/out" 2>"$tmp/err" || status=$?

cat "$tmp/out"
# LeakSanitizer's own lines (reports, suppressions), without whisper.cpp's log.
grep -E "LeakSanitizer|leaked|Suppressions used|^ *[0-9]+ +[0-9]+ |Direct leak|Indirect leak|    #" "$tmp/err" || true
if [[ $status -eq 23 ]]; then
  echo "FAIL: LeakSanitizer found leaks (above)" >&2
  exit 1
elif [[ $status -ne 0 ]]; then
  echo "FAIL: leak_check exited with $status" >&2
  tail -n 40 "$tmp/err" >&2
  exit 1
fi
grep -q "safe API: $iterations transcriptions" "$tmp/out" && grep -q "recognizer: $iterations transcriptions" "$tmp/out" \
  || { echo "FAIL: the transcriptions did not all run" >&2; exit 1; }
echo "leak check: no leaks ($iterations + $iterations transcriptions)"
