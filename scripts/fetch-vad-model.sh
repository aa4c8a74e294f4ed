#!/usr/bin/env bash
# Fetches the Silero VAD model for whisper.cpp's voice activity detection: the ONNX model
# shipped in the PyPI wheel silero-vad 6.2.0 (MIT), converted to whisper.cpp's ggml VAD format
# with `whisper-steady convert-silero`. Both the wheel and the converted model are checked
# against pinned sha256 sums (the converted model is byte for byte upstream whisper.cpp's own
# models/for-tests-silero-v6.2.0-ggml.bin, which upstream converts from the same package with
# PyTorch). The last line on stdout is the converted model's path; the rest goes to stderr.
#
# Cache folder: $WHISPER_STEADY_MODEL_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models.
# It ends up holding the wheel, the ONNX file (silero-vad-6.2.0/silero_vad.onnx; point
# WHISPER_STEADY_TEST_VAD_ONNX at it to run the converter's end-to-end test) and
# ggml-silero-v6.2.0.bin. Nothing is redone when the verified model and the ONNX file are already
# there; a missing ONNX file is unpacked again from the wheel.
#
# The conversion runs `cargo run -p whisper-steady-cli` (the dev profile, which tests share); set
# WHISPER_STEADY_CLI to a built `whisper-steady` binary to use that instead.
set -euo pipefail

VERSION=6.2.0
WHEELS=(
  "silero-vad $VERSION silero_vad-6.2.0-py3-none-any.whl 8a31f1e58e73cdc20820d842f757e678e0ae1b0ee1cb7b8aa50f20f8fd7f7638"
)
MODEL=ggml-silero-v6.2.0.bin
MODEL_SHA256=2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987

LOG_NAME=fetch-vad-model
# shellcheck source=lib/fetch-wheel.sh
. "$(dirname "$0")/lib/fetch-wheel.sh"
onnx_dir=$cache/silero-vad-$VERSION
onnx=$onnx_dir/silero_vad.onnx
KEEP=("$onnx")
start_fetch

# The ONNX model, unpacked afresh so that it matches the verified wheel.
log "unpacking silero_vad.onnx into $onnx_dir"
unpack_from_wheel "${wheels[0]}" 'silero_vad/data/silero_vad.onnx' "$tmp/unpacked"
mkdir -p "$onnx_dir"
mv "$tmp/unpacked/silero_vad/data/silero_vad.onnx" "$onnx"

# The conversion (unless $out is verified already), into a temporary file that only becomes $out
# once verified.
convert_verified "$repo" "$out" "$MODEL_SHA256" "$tmp" convert-silero "$onnx" --silero-version "$VERSION"
log "ONNX model: $onnx"
echo "$out"
