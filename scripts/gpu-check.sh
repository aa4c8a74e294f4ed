#!/usr/bin/env bash
# The GPU proof, in two steps (docs/cuda.md, "Proving it on a GPU"):
#
#   scripts/gpu-check.sh pack   # here, after scripts/build-cuda.sh: builds the bundle to carry
#   scripts/gpu-check.sh run    # on the GPU machine, in the repository root, with the bundle
#
# pack writes target/gpu-check-bundle/ (under 64 MiB): the stripped CUDA build of the
# whisper-steady CLI and the test model quantized to q5_0, both xz-compressed, and jfk.wav.
#   Needs: WHISPER_STEADY_TEST_MODEL (the f16 tiny.en, see scripts/fetch-test-model.sh); the
#   CUDA build in ${CARGO_TARGET_DIR:-target/cuda}/dist; the speech in ../shared/audio/jfk.wav
#   (or GPU_CHECK_AUDIO).
#
# run needs no Rust and no network: it finds the CUDA runtime and cuBLAS libraries (ldconfig,
# the CUDA install, PyTorch's bundled NVIDIA wheels), unpacks the bundle, records the card and
# driver, runs `whisper-steady gpu-check` (under 6 minutes) and writes into $OUT (default
# target/gpu-check-out): gpu-check.txt (the table), gpu-check.json, gpu-check.log (whisper.cpp's
# and ggml's log), environment.txt, and gpu-results.md, ready to commit as docs/gpu-results.md.
# Exit status: the check's (0 when every row passed).
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=target/gpu-check-bundle
say() { printf '[gpu-check] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pack() {
  local dist="${CARGO_TARGET_DIR:-target/cuda}/dist"
  local model="${WHISPER_STEADY_TEST_MODEL:-}"
  local audio="${GPU_CHECK_AUDIO:-../shared/audio/jfk.wav}"
  [ -x "$dist/whisper-steady" ] || die "no $dist/whisper-steady: run scripts/build-cuda.sh first"
  [ -f "$model" ] || die "set WHISPER_STEADY_TEST_MODEL to the f16 tiny.en model (scripts/fetch-test-model.sh)"
  [ -f "$audio" ] || die "no speech at $audio (set GPU_CHECK_AUDIO)"
  rm -rf "$bundle"
  mkdir -p "$bundle"
  # The quantizer of this build's CPU twin would do as well; the CUDA binary may not start here.
  local cli="${WHISPER_STEADY_CLI:-target/release/whisper-steady}"
  [ -x "$cli" ] || cargo build --release -p whisper-steady-cli
  "$cli" quantize "$model" "$bundle/model-q5_0.bin" --type q5_0 >&2
  xz -9 -T0 "$bundle/model-q5_0.bin"
  xz -9 -T0 -c "$dist/whisper-steady" > "$bundle/whisper-steady.xz"
  cp "$audio" "$bundle/jfk.wav"
  (cd "$bundle" && sha256sum model-q5_0.bin.xz whisper-steady.xz jfk.wav > SHA256SUMS)
  local total
  total=$(du -cb "$bundle"/* | tail -n 1 | cut -f1)
  say "bundle: $bundle, $(( total / 1024 / 1024 )) MiB"
  [ "$total" -lt $(( 64 * 1024 * 1024 )) ] || die "the bundle exceeds 64 MiB"
}

# Prints the folders that hold each needed library, one per line.
find_lib_dirs() {
  local lib found
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcuda.so.1; do
    found=""
    found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}')
    if [ -z "$found" ]; then
      found=$( { ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu 2>/dev/null
                 python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "torch", "lib")):
        print(d)
PY
               } | while read -r d; do [ -e "$d/$lib" ] && { echo "$d/$lib"; break; }; done)
    fi
    if [ -z "$found" ]; then
      say "cannot find $lib (searched ldconfig, /usr/local/cuda*, Python's nvidia/* and torch wheels)"
      return 1
    fi
    dirname "$found"
  done | sort -u
}

unxz_to() { # $1 = .xz file, $2 = output
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"
  fi
}

run() {
  local out="${OUT:-target/gpu-check-out}" work
  mkdir -p "$out"
  [ -f "$bundle/whisper-steady.xz" ] || die "no bundle at $bundle: run 'scripts/gpu-check.sh pack' and carry it"
  (cd "$bundle" && sha256sum -c --quiet SHA256SUMS) || die "the bundle is damaged"
  work=$(mktemp -d)
  unxz_to "$bundle/whisper-steady.xz" "$work/whisper-steady"
  chmod +x "$work/whisper-steady"
  unxz_to "$bundle/model-q5_0.bin.xz" "$work/model-q5_0.bin"

  local dirs
  dirs=$(find_lib_dirs) || die "CUDA libraries missing"
  LD_LIBRARY_PATH="$(echo "$dirs" | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cores: $(nproc)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /' || echo "gpu: nvidia-smi unavailable"
    echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
    ldd "$work/whisper-steady" | grep -E 'cuda|cublas' || true
  } > "$out/environment.txt"
  cat "$out/environment.txt" >&2
  if ldd "$work/whisper-steady" | grep -q 'not found'; then
    die "unresolved libraries: $(ldd "$work/whisper-steady" | grep 'not found' | tr '\n' ' ')"
  fi

  local rc=0
  GGML_NO_BACKTRACE=1 timeout 360 "$work/whisper-steady" gpu-check \
    --model "$work/model-q5_0.bin" --audio "$bundle/jfk.wav" --json "$out/gpu-check.json" \
    > "$out/gpu-check.txt" 2> "$out/gpu-check.log" || rc=$?
  cat "$out/gpu-check.txt"
  [ "$rc" -eq 0 ] || { say "gpu-check exited with $rc; last log lines:"; tail -n 20 "$out/gpu-check.log" >&2; }

  {
    echo "# GPU check results"
    echo
    echo "The last real run of \`scripts/gpu-check.sh run\` (see [cuda.md](cuda.md#proving-it-on-a-gpu))."
    echo
    sed 's/^/- /' "$out/environment.txt" | grep -vE 'LD_LIBRARY_PATH|=>'
    echo "- exit status: $rc"
    echo
    echo '```text'
    cat "$out/gpu-check.txt"
    echo '```'
    echo
    echo "The full report is the JSON written next to this table (\`gpu-check.json\`)."
  } > "$out/gpu-results.md"
  rm -rf "$work"
  return "$rc"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh pack|run" >&2; exit 2 ;;
esac
