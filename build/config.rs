//! Everything the build reads from its environment, read once into a typed [`Config`].
//!
//! Every variable goes through [`env_var`], which emits `cargo::rerun-if-env-changed` for it, so
//! changing any input the build depends on triggers a rebuild.

use std::collections::BTreeMap;
use std::env;
use std::path::PathBuf;

use crate::backends::{Feature, Features};
use crate::cpu::{self, CpuChoice, CpuRequest, RustflagsCpu};
use crate::BuildError;

/// Reads one environment variable and tells cargo to rerun the build script when it changes.
pub fn env_var(name: &str) -> Option<String> {
    println!("cargo::rerun-if-env-changed={name}");
    env::var(name).ok()
}

fn required(name: &str) -> Result<String, BuildError> {
    env_var(name).ok_or_else(|| {
        BuildError::new(format!(
            "{name} is not set; the build script must be run by cargo"
        ))
    })
}

/// Prefixes of variables passed through to cmake as `-D<NAME>=<VALUE>` (as whisper-rs-sys does).
const CMAKE_PASSTHROUGH_PREFIXES: &[&str] = &["GGML_", "CMAKE_", "WHISPER_"];

/// Variables with a pass-through prefix that are not cmake options: runtime switches of the
/// patched library, and this crate's own build settings.
const NOT_CMAKE_OPTIONS: &[&str] = &[
    "GGML_CUDA_FORCE_LEGACY_POOL",
    "GGML_USE_VMM",
    "WHISPER_STEADY_SOURCE_DIR",
    "WHISPER_STEADY_PATCH_EXCLUDE",
    "WHISPER_STEADY_CPU",
    "WHISPER_DONT_GENERATE_BINDINGS",
];

/// The whole build configuration.
#[derive(Debug)]
pub struct Config {
    /// Cargo's `OUT_DIR`.
    pub out_dir: PathBuf,
    /// This crate's root.
    pub manifest_dir: PathBuf,
    /// The cargo binary running this build.
    pub cargo: PathBuf,
    /// `CARGO_CFG_TARGET_ARCH`.
    pub target_arch: String,
    /// `CARGO_CFG_TARGET_OS`.
    pub target_os: String,
    /// `CARGO_CFG_TARGET_ENV`.
    pub target_env: String,
    /// Target features rustc enables (`CARGO_CFG_TARGET_FEATURE`).
    pub target_features: Vec<String>,
    /// The instruction sets ggml is compiled for, from `WHISPER_STEADY_CPU`, RUSTFLAGS, `HOST`
    /// and `TARGET` ([`cpu::choose`]).
    pub cpu: CpuChoice,
    /// True when cargo builds for the machine it runs on (`HOST` == `TARGET`).
    pub native_host: bool,
    /// The backend features that are on.
    pub features: Features,
    /// `WHISPER_STEADY_SOURCE_DIR`: use this whisper.cpp tree instead of the pinned package.
    pub source_dir: Option<PathBuf>,
    /// `WHISPER_STEADY_PATCH_EXCLUDE`: patches to leave out (for regression tests).
    pub patch_exclude: Vec<String>,
    /// `GGML_*`, `CMAKE_*`, `WHISPER_*` variables handed to cmake.
    pub cmake_passthrough: BTreeMap<String, String>,
    /// Where to look for the CUDA toolkit; read (and watched) only with feature `cuda`.
    pub cuda: Option<CudaEnv>,
    /// `OPENBLAS_PATH` (read with feature `openblas` only, as every variable below).
    pub openblas_path: Option<PathBuf>,
    /// `BLAS_INCLUDE_DIRS` (feature `openblas`).
    pub blas_include_dirs: Option<String>,
    /// `HIP_PATH` (feature `hipblas`).
    pub hip_path: Option<PathBuf>,
    /// `AMDGPU_TARGETS` (feature `hipblas`).
    pub amdgpu_targets: Option<String>,
    /// `VULKAN_SDK` (feature `vulkan`).
    pub vulkan_sdk: Option<PathBuf>,
    /// `DOCS_RS`: generate bindings only, build nothing.
    pub docs_rs: bool,
}

/// The variables that locate the CUDA toolkit. Read only when feature `cuda` is on, so that a
/// CPU build does not rerun whenever `PATH` changes.
#[derive(Debug)]
pub struct CudaEnv {
    /// Toolkit roots: `CUDA_PATH`, `CUDA_HOME`, `CUDA_TOOLKIT_ROOT_DIR`, in that order.
    pub roots: Vec<PathBuf>,
    /// `CUDACXX`: explicit nvcc.
    pub cudacxx: Option<PathBuf>,
    /// `PATH`, to look for nvcc.
    pub path: Option<String>,
}

impl CudaEnv {
    fn from_env() -> CudaEnv {
        CudaEnv {
            roots: ["CUDA_PATH", "CUDA_HOME", "CUDA_TOOLKIT_ROOT_DIR"]
                .iter()
                .filter_map(|v| env_var(v))
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .collect(),
            cudacxx: env_var("CUDACXX")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            path: env_var("PATH"),
        }
    }
}

impl Config {
    /// Reads the configuration once, emitting `rerun-if-env-changed` for every variable read.
    pub fn from_env() -> Result<Config, BuildError> {
        let features = Features::from_fn(|f| env::var_os(f.cargo_env()).is_some());
        let with = |feature: Feature, name: &str| {
            if features.has(feature) {
                env_var(name)
            } else {
                None
            }
        };
        let rustflags_cpu =
            RustflagsCpu::from_encoded(&env_var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default());
        let cpu_request =
            CpuRequest::parse(env_var("WHISPER_STEADY_CPU").as_deref()).map_err(BuildError::new)?;
        let host = required("HOST")?;
        let target = required("TARGET")?;
        let cpu = cpu::choose(cpu_request, rustflags_cpu, &host, &target);

        let mut cmake_passthrough = BTreeMap::new();
        for (key, _) in env::vars() {
            let passes = CMAKE_PASSTHROUGH_PREFIXES
                .iter()
                .any(|p| key.starts_with(p))
                && !NOT_CMAKE_OPTIONS.contains(&key.as_str());
            if passes {
                if let Some(value) = env_var(&key) {
                    cmake_passthrough.insert(key, value);
                }
            }
        }

        Ok(Config {
            out_dir: PathBuf::from(required("OUT_DIR")?),
            manifest_dir: PathBuf::from(required("CARGO_MANIFEST_DIR")?),
            cargo: PathBuf::from(env_var("CARGO").unwrap_or_else(|| "cargo".to_string())),
            target_arch: env_var("CARGO_CFG_TARGET_ARCH").unwrap_or_default(),
            target_os: env_var("CARGO_CFG_TARGET_OS").unwrap_or_default(),
            target_env: env_var("CARGO_CFG_TARGET_ENV").unwrap_or_default(),
            target_features: env_var("CARGO_CFG_TARGET_FEATURE")
                .unwrap_or_default()
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
            cpu,
            native_host: host == target,
            cuda: features.has(Feature::Cuda).then(CudaEnv::from_env),
            source_dir: env_var("WHISPER_STEADY_SOURCE_DIR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            patch_exclude: env_var("WHISPER_STEADY_PATCH_EXCLUDE")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            cmake_passthrough,
            openblas_path: with(Feature::Openblas, "OPENBLAS_PATH").map(PathBuf::from),
            blas_include_dirs: with(Feature::Openblas, "BLAS_INCLUDE_DIRS"),
            hip_path: with(Feature::Hipblas, "HIP_PATH").map(PathBuf::from),
            amdgpu_targets: with(Feature::Hipblas, "AMDGPU_TARGETS"),
            vulkan_sdk: with(Feature::Vulkan, "VULKAN_SDK").map(PathBuf::from),
            features,
            docs_rs: env_var("DOCS_RS").is_some(),
        })
    }
}
