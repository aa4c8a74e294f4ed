#!/usr/bin/env bash
# Rewrites patches/upstream.sha256: the sha256 of every upstream file that a patch in
# patches/series modifies, taken from the pristine tree. Run it only when bumping upstream on
# purpose, after rebasing the patches (docs/patches.md, "Bumping upstream").
#
# The pristine tree is WHISPER_STEADY_SOURCE_DIR when set, otherwise the package pinned by
# vendor/whisper-cpp-pin, materialized with `cargo vendor` into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${WHISPER_STEADY_SOURCE_DIR:-}" ]; then
  tree="$WHISPER_STEADY_SOURCE_DIR"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cargo vendor --quiet --versioned-dirs --locked --manifest-path vendor/whisper-cpp-pin/Cargo.toml "$tmp" >/dev/null
  tree=$(echo "$tmp"/whisper-rs-sys-*/whisper.cpp)
fi

patches=$(grep -v '^#' patches/series | sed '/^[[:space:]]*$/d')
# Files that a patch of the series creates (`--- /dev/null`) are not upstream's, even when a
# later patch modifies them.
created=$(for patch in $patches; do
  { grep -A1 '^--- /dev/null' "patches/$patch" || true; } | sed -n 's|\t.*$||; s|^+++ b/||p'
done | sort -u)
files=$(for patch in $patches; do
  grep '^--- a/' "patches/$patch" | sed 's|^--- a/||; s|\t.*$||'
done | sort -u | comm -23 - <(printf '%s\n' "$created"))

(cd "$tree" && sha256sum $files) > patches/upstream.sha256
echo "wrote patches/upstream.sha256 from $tree:" >&2
cat patches/upstream.sha256 >&2
