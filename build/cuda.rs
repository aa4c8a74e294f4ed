//! Finding the CUDA toolkit and choosing the GPU architectures (feature `cuda`).

use std::path::{Path, PathBuf};

use crate::config::{Config, CudaEnv};
use crate::BuildError;

/// Architectures compiled when `CMAKE_CUDA_ARCHITECTURES` is not set. Never `native`: a build
/// machine without a visible GPU would silently produce a library for no GPU at all. Turing and
/// Ampere as PTX (JIT-compiled by the driver on any newer GPU), plus real code for Ampere (GA10x),
/// Ada and Hopper. CUDA 13 no longer targets GPUs older than Turing.
pub const DEFAULT_CUDA_ARCHITECTURES: &str = "75-virtual;80-virtual;86-real;89-real;90-real";

/// A located CUDA toolkit.
#[derive(Debug)]
pub struct Toolkit {
    /// Toolkit root (holds `bin/nvcc`, `include/`, `lib64/` or `lib/`).
    pub root: PathBuf,
    /// The nvcc to use.
    pub nvcc: PathBuf,
}

impl Toolkit {
    /// Directories the linker should search for cudart, cublas, cublasLt, culibos and the
    /// driver stub `libcuda.so`.
    pub fn link_dirs(&self) -> Vec<PathBuf> {
        [
            "lib64",
            "lib",
            "lib64/stubs",
            "lib/stubs",
            "targets/x86_64-linux/lib",
            "targets/x86_64-linux/lib/stubs",
            "targets/sbsa-linux/lib",
            "targets/sbsa-linux/lib/stubs",
            "lib/x64",
        ]
        .iter()
        .map(|d| self.root.join(d))
        .filter(|d| d.is_dir())
        .collect()
    }
}

/// Finds the toolkit through `CUDACXX`, `CUDA_PATH`, `CUDA_HOME`, `CUDA_TOOLKIT_ROOT_DIR`, then
/// `nvcc` on `PATH`.
pub fn find_toolkit(config: &Config, env: &CudaEnv) -> Result<Toolkit, BuildError> {
    let nvcc_name = if config.target_os == "windows" {
        "nvcc.exe"
    } else {
        "nvcc"
    };
    if let Some(nvcc) = &env.cudacxx {
        if !nvcc.is_file() {
            return Err(BuildError::new(format!(
                "CUDACXX={} does not exist; point it at nvcc or unset it",
                nvcc.display()
            )));
        }
        let root = toolkit_root_of(nvcc).unwrap_or_else(|| PathBuf::from("/"));
        return Ok(Toolkit {
            root,
            nvcc: nvcc.clone(),
        });
    }
    if let Some(root) = env.roots.first() {
        let nvcc = root.join("bin").join(nvcc_name);
        if nvcc.is_file() {
            return Ok(Toolkit {
                root: root.clone(),
                nvcc,
            });
        }
        return Err(BuildError::new(format!(
            "the CUDA toolkit root {} (from CUDA_PATH/CUDA_HOME/CUDA_TOOLKIT_ROOT_DIR) has no \
             bin/{nvcc_name}; point the variable at the toolkit root",
            root.display()
        )));
    }
    if let Some(path) = &env.path {
        for dir in std::env::split_paths(path) {
            let nvcc = dir.join(nvcc_name);
            if nvcc.is_file() {
                if let Some(root) = toolkit_root_of(&nvcc) {
                    return Ok(Toolkit { root, nvcc });
                }
            }
        }
    }
    Err(BuildError::new(
        "feature `cuda` needs the CUDA toolkit, but none was found: set CUDA_PATH (or CUDA_HOME) \
         to the toolkit root that holds bin/nvcc, or put nvcc on PATH (see docs/cuda.md, \"Building with CUDA\").",
    ))
}

fn toolkit_root_of(nvcc: &Path) -> Option<PathBuf> {
    let nvcc = nvcc.canonicalize().ok()?;
    Some(nvcc.parent()?.parent()?.to_path_buf())
}

/// cmake defines for a CUDA build.
pub fn cmake_defines(config: &Config, toolkit: &Toolkit) -> Vec<(String, String)> {
    let mut defines = vec![
        (
            "CUDAToolkit_ROOT".to_string(),
            toolkit.root.display().to_string(),
        ),
        (
            "CMAKE_CUDA_COMPILER".to_string(),
            toolkit.nvcc.display().to_string(),
        ),
    ];
    if !config
        .cmake_passthrough
        .contains_key("CMAKE_CUDA_ARCHITECTURES")
    {
        defines.push((
            "CMAKE_CUDA_ARCHITECTURES".to_string(),
            DEFAULT_CUDA_ARCHITECTURES.to_string(),
        ));
    }
    defines
}

/// Link lines for CUDA: the runtime, cuBLAS, cuBLASLt, the driver library and, outside Windows,
/// culibos (as whisper-rs-sys links it).
pub fn emit_link(config: &Config, toolkit: &Toolkit) {
    for dir in toolkit.link_dirs() {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    for lib in ["cudart", "cublas", "cublasLt", "cuda"] {
        println!("cargo::rustc-link-lib={lib}");
    }
    if config.target_os != "windows" {
        println!("cargo::rustc-link-lib=culibos");
    }
}
