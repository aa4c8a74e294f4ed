#!/usr/bin/env bash
# End-to-end check of the build script's drift error: builds against a copy of the pinned tree
# with one patched-over file edited (through WHISPER_STEADY_SOURCE_DIR) and expects cargo to stop
# with a `cargo::error=` naming the file, both hashes and the patch.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo vendor --quiet --versioned-dirs --locked --manifest-path vendor/whisper-cpp-pin/Cargo.toml "$tmp/vendor" >/dev/null
cp -r "$tmp"/vendor/whisper-rs-sys-*/whisper.cpp "$tmp/tree"
chmod -R u+w "$tmp/tree"
echo "// local edit" >> "$tmp/tree/ggml/src/ggml-cuda/ggml-cuda.cu"

if WHISPER_STEADY_SOURCE_DIR="$tmp/tree" cargo build --quiet >"$tmp/log" 2>&1; then
  echo "FAIL: the build accepted a tampered upstream tree" >&2
  exit 1
fi
for needle in "ggml/src/ggml-cuda/ggml-cuda.cu does not match the pin" \
              "expected sha256 $(grep ggml-cuda.cu patches/upstream.sha256 | cut -d' ' -f1)" \
              "found $(sha256sum "$tmp/tree/ggml/src/ggml-cuda/ggml-cuda.cu" | cut -d' ' -f1)" \
              "0001-cuda-vmm-pool-out-of-order-frees.patch" \
              "scripts/refresh-upstream-hashes.sh"; do
  if ! grep -qF "$needle" "$tmp/log"; then
    echo "FAIL: the drift error lacks: $needle" >&2
    cat "$tmp/log" >&2
    exit 1
  fi
done
if grep -q "panicked" "$tmp/log"; then
  echo "FAIL: the build script panicked instead of reporting" >&2
  exit 1
fi
echo "ok: the build stops with the drift error"
