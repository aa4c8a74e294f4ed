#!/usr/bin/env bash
# Compiles the patched ggml/src/ggml-cuda/ggml-cuda.cu with nvcc for sm_90 (tests/cuda_compile.rs).
# Fails when the patched translation unit does not compile.
#
# nvcc comes from WHISPER_STEADY_NVCC when set; otherwise from the PyPI wheels listed in
# scripts/lib/cuda-wheels.sh, installed once into WHISPER_STEADY_CUDA_WHEELS
# (default: ~/.cache/whisper-steady/cuda-wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/cuda-wheels.sh
. scripts/lib/cuda-wheels.sh
if [ -z "${WHISPER_STEADY_NVCC:-}" ]; then
  install_cuda_wheels
  export WHISPER_STEADY_NVCC="$CUDA_WHEELS_ROOT/bin/nvcc"
fi

"$WHISPER_STEADY_NVCC" --version | tail -n 2
WHISPER_STEADY_REQUIRE_NVCC=1 cargo test --test cuda_compile -- --nocapture
