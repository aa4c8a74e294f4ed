# Sourced by scripts/cuda-compile-check.sh and scripts/build-cuda.sh: installs the CUDA 13.0
# toolkit pieces that PyPI ships as wheels (nvcc, headers, runtime, cuBLAS, culibos; about
# 600 MB) into one folder, once, and sets CUDA_WHEELS_ROOT to their nvidia/cu13 tree.
#
# WHISPER_STEADY_CUDA_WHEELS chooses the folder (default: ~/.cache/whisper-steady/cuda-wheels).

CUDA_WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.0.2.14
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-culibos==13.0.85
)

install_cuda_wheels() {
  local dir="${WHISPER_STEADY_CUDA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/whisper-steady/cuda-wheels}"
  local stamp="$dir/.installed"
  if [ ! -x "$dir/nvidia/cu13/bin/nvcc" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${CUDA_WHEELS[*]}" ]; then
    echo "installing the CUDA wheels into $dir" >&2
    rm -rf "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "${CUDA_WHEELS[@]}"
    echo "${CUDA_WHEELS[*]}" > "$stamp"
  fi
  CUDA_WHEELS_ROOT="$dir/nvidia/cu13"
}
