#!/usr/bin/env bash
# Compiles the patched ggml/src/ggml-cuda/ggml-cuda.cu with nvcc for sm_90 (tests/cuda_compile.rs).
# Fails when the patched translation unit does not compile.
#
# nvcc comes from WHISPER_STEADY_NVCC when set; otherwise from these PyPI wheels (they unpack into
# one nvidia/cu13 tree, about 500 MB), installed once into WHISPER_STEADY_CUDA_WHEELS
# (default: ~/.cache/whisper-steady/cuda-wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.0.2.14
  nvidia-cuda-cccl==13.0.85
)

if [ -z "${WHISPER_STEADY_NVCC:-}" ]; then
  prefix="${WHISPER_STEADY_CUDA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/cuda-wheels}"
  stamp="$prefix/.installed"
  if [ ! -x "$prefix/nvidia/cu13/bin/nvcc" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${WHEELS[*]}" ]; then
    echo "installing nvcc wheels into $prefix" >&2
    rm -rf "$prefix"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$prefix" "${WHEELS[@]}"
    echo "${WHEELS[*]}" > "$stamp"
  fi
  export WHISPER_STEADY_NVCC="$prefix/nvidia/cu13/bin/nvcc"
fi

"$WHISPER_STEADY_NVCC" --version | tail -n 2
WHISPER_STEADY_REQUIRE_NVCC=1 cargo test --test cuda_compile -- --nocapture
