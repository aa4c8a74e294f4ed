#!/usr/bin/env bash
# Builds the release binaries with `--features cuda` on a machine without a system CUDA toolkit:
# installs nvcc, the headers, cudart, cuBLAS and culibos from PyPI wheels
# (scripts/lib/cuda-wheels.sh), assembles them into a toolkit-shaped folder that cmake's
# FindCUDAToolkit and the linker accept, and runs cargo.
#
#   scripts/build-cuda.sh            # whisper-steady (CLI, with gpu-check) and recognizer-server
#
# Environment (all optional):
#   CMAKE_CUDA_ARCHITECTURES      GPU code to build; default 90-real (H100/H200). The library's own
#                                 default without this script is 75-virtual;80-virtual;86-real;89-real;90-real.
#   RUSTFLAGS                     default "-C target-cpu=x86-64-v3" (AVX2/FMA: every GPU host of
#                                 this generation), never the build machine's own CPU.
#   WHISPER_STEADY_CUDA_TOOLKIT   where the toolkit folder is assembled
#                                 (default: ~/.cache/whisper-steady/cuda-toolkit)
#   WHISPER_STEADY_CUDA_WHEELS    where the wheels are installed (see scripts/lib/cuda-wheels.sh)
#   CARGO_TARGET_DIR              default target/cuda
#   CARGO_BUILD_JOBS / CMAKE_BUILD_PARALLEL_LEVEL   parallelism (default: all cores)
#
# Output: the binaries in $CARGO_TARGET_DIR/release, and stripped copies in
# $CARGO_TARGET_DIR/dist (what scripts/gpu-check.sh expects to run on a GPU machine).
# The last line printed is the dist folder.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/cuda-wheels.sh
. scripts/lib/cuda-wheels.sh

say() { printf '[build-cuda] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v cmake >/dev/null || die "cmake is missing (Debian/Ubuntu: apt-get install cmake)"
command -v cc >/dev/null || die "a C compiler is missing (Debian/Ubuntu: apt-get install g++)"
command -v python3 >/dev/null || die "python3 with pip is needed to install the CUDA wheels"

# 1. The wheels.
install_cuda_wheels
wheels="$CUDA_WHEELS_ROOT"
[ -f "$wheels/lib/libculibos.a" ] || die "the culibos wheel did not provide lib/libculibos.a"

# 2. A toolkit-shaped folder: bin/, include/, nvvm/ as links into the wheels; lib/ with the
#    unversioned .so links that `-lcudart` and cmake look for; lib64 -> lib; a link-time stub
#    libcuda.so in lib/stubs (the real driver library is loaded at run time by its soname).
toolkit="${WHISPER_STEADY_CUDA_TOOLKIT:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/cuda-toolkit}"
assemble_toolkit() {
  rm -rf "$toolkit"
  mkdir -p "$toolkit/lib/stubs"
  for d in bin include nvvm; do
    ln -s "$wheels/$d" "$toolkit/$d"
  done
  ln -s lib "$toolkit/lib64"
  for f in "$wheels"/lib/*; do
    ln -s "$f" "$toolkit/lib/$(basename "$f")"
  done
  for lib in cudart cublas cublasLt; do
    versioned=$(cd "$wheels/lib" && ls "lib$lib.so."* 2>/dev/null | sort | head -n 1)
    [ -n "$versioned" ] || die "no lib$lib.so.* in the wheels"
    ln -s "$versioned" "$toolkit/lib/lib$lib.so"
  done
  make_driver_stub "$toolkit/lib/stubs"
}

# The stub exports every driver entry point that cuda.h declares, under the names a program
# links against (cuda.h maps many to _v2/_v3 names with #define). Its soname is the driver's,
# libcuda.so.1, so the binaries load the real driver at run time.
make_driver_stub() {
  local out="$1" src
  src=$(mktemp -d)
  {
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' "$wheels/include/cuda.h" | sed -E 's/[[:space:]]*\($//'
    grep -oE '^#define[[:space:]]+cu[A-Z][A-Za-z0-9_]*[[:space:]]+cu[A-Z][A-Za-z0-9_]*' "$wheels/include/cuda.h" | awk '{print $3}'
  } | sort -u | awk '{printf "void %s(void) {}\n", $1}' > "$src/stub.c"
  [ "$(wc -l < "$src/stub.c")" -gt 100 ] || die "found too few driver functions in cuda.h for the stub"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so" "$src/stub.c"
  rm -rf "$src"
}

stamp="$toolkit/.assembled"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wheels ${CUDA_WHEELS[*]}" ] || [ ! -e "$toolkit/lib/stubs/libcuda.so" ]; then
  say "assembling the toolkit folder $toolkit"
  assemble_toolkit
  echo "$wheels ${CUDA_WHEELS[*]}" > "$stamp"
fi
"$toolkit/bin/nvcc" --version | tail -n 1 >&2

# 3. The build.
export CUDA_PATH="$toolkit"
export CUDAToolkit_ROOT="$toolkit"
export CUDACXX="$toolkit/bin/nvcc"
export LIBRARY_PATH="$toolkit/lib:$toolkit/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90-real}"
export RUSTFLAGS="${RUSTFLAGS:--C target-cpu=x86-64-v3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
say "cargo build --release --features cuda (CMAKE_CUDA_ARCHITECTURES=$CMAKE_CUDA_ARCHITECTURES, RUSTFLAGS=$RUSTFLAGS, target $CARGO_TARGET_DIR)"
start=$(date +%s)
cargo build --release --locked \
  -p whisper-steady-cli --features whisper-steady-cli/cuda \
  -p recognizer-server --features recognizer-server/cuda
say "built in $(( $(date +%s) - start )) s"

# 4. Stripped copies to carry.
dist="$CARGO_TARGET_DIR/dist"
mkdir -p "$dist"
for bin in whisper-steady recognizer-server; do
  strip -o "$dist/$bin" "$CARGO_TARGET_DIR/release/$bin"
  size=$(stat -c %s "$dist/$bin")
  say "$dist/$bin: $(( size / 1024 / 1024 )) MiB stripped; needs: $(objdump -p "$dist/$bin" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"
done
echo "$dist"
