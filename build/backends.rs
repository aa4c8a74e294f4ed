//! One table, a row per backend feature: its cmake defines (on and off), the compilers its
//! toolchain needs, the headers bindgen adds, the static libraries cmake builds for it, the
//! system libraries and macOS frameworks it links, and where to search for them. The CPU flags
//! that [`crate::cpu`] chose are turned into defines here too.

use std::path::PathBuf;

use crate::config::Config;
use crate::cpu::CpuTarget;

/// A Cargo feature that selects a ggml backend (named as in whisper-rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `cuda`: NVIDIA GPUs (the toolkit is found by [`crate::cuda`]).
    Cuda,
    /// `hipblas`: AMD GPUs through ROCm.
    Hipblas,
    /// `metal`: Apple GPUs.
    Metal,
    /// `vulkan`: GPUs through Vulkan.
    Vulkan,
    /// `openblas`: matrix products on the CPU through OpenBLAS.
    Openblas,
    /// `openmp`: ggml's CPU threads through OpenMP.
    Openmp,
    /// `coreml`: the encoder on Apple's Neural Engine.
    Coreml,
    /// `intel-sycl`: Intel GPUs through SYCL.
    IntelSycl,
}

impl Feature {
    /// Every backend feature.
    pub const ALL: [Feature; 8] = [
        Feature::Cuda,
        Feature::Hipblas,
        Feature::Metal,
        Feature::Vulkan,
        Feature::Openblas,
        Feature::Openmp,
        Feature::Coreml,
        Feature::IntelSycl,
    ];

    /// The Cargo feature's name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Cuda => "cuda",
            Feature::Hipblas => "hipblas",
            Feature::Metal => "metal",
            Feature::Vulkan => "vulkan",
            Feature::Openblas => "openblas",
            Feature::Openmp => "openmp",
            Feature::Coreml => "coreml",
            Feature::IntelSycl => "intel-sycl",
        }
    }

    /// The environment variable cargo sets when the feature is on.
    pub fn cargo_env(self) -> String {
        format!(
            "CARGO_FEATURE_{}",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// The backend features that are on.
#[derive(Debug, Clone, Default)]
pub struct Features(Vec<Feature>);

impl Features {
    /// The features among [`Feature::ALL`] that `is_on` says are enabled.
    pub fn from_fn(is_on: impl Fn(Feature) -> bool) -> Features {
        Features(Feature::ALL.into_iter().filter(|&f| is_on(f)).collect())
    }

    /// Whether `feature` is on.
    pub fn has(&self, feature: Feature) -> bool {
        self.0.contains(&feature)
    }
}

/// A backend feature and everything the build does differently for it.
pub struct Backend {
    /// The feature.
    pub feature: Feature,
    /// cmake defines when the feature is on.
    pub on: &'static [(&'static str, &'static str)],
    /// cmake defines when the feature is off (ggml turns some of these on by default).
    pub off: &'static [(&'static str, &'static str)],
    /// The C and C++ compilers its toolchain needs, when cmake's default will not do.
    pub compilers: Option<(&'static str, &'static str)>,
    /// Headers bindgen reads besides `whisper.h` and `ggml.h`.
    pub headers: &'static [&'static str],
    /// Static libraries built by cmake that the feature adds, in link order.
    pub static_libs: &'static [&'static str],
    /// System libraries it links (`rustc-link-lib` names) for the target.
    pub system_libs: fn(&Config) -> Vec<&'static str>,
    /// macOS frameworks it links.
    pub frameworks: &'static [&'static str],
    /// A folder to search for its system libraries (from the user's environment).
    pub lib_dir: fn(&Config) -> Option<PathBuf>,
}

fn no_libs(_: &Config) -> Vec<&'static str> {
    Vec::new()
}

fn no_dir(_: &Config) -> Option<PathBuf> {
    None
}

/// Every backend feature. The CPU backend is always built. CUDA's libraries and folders come
/// from the toolkit that [`crate::cuda::find_toolkit`] located.
pub const BACKENDS: &[Backend] = &[
    Backend {
        feature: Feature::Cuda,
        on: &[("GGML_CUDA", "ON"), ("GGML_CUDA_FA_ALL_QUANTS", "OFF")],
        off: &[("GGML_CUDA", "OFF")],
        compilers: None,
        headers: &["ggml-cuda.h"],
        static_libs: &["ggml-cuda"],
        system_libs: no_libs,
        frameworks: &[],
        lib_dir: no_dir,
    },
    Backend {
        feature: Feature::Hipblas,
        on: &[("GGML_HIP", "ON")],
        off: &[("GGML_HIP", "OFF")],
        compilers: Some(("hipcc", "hipcc")),
        headers: &[],
        static_libs: &["ggml-hip"],
        system_libs: |_| vec!["hipblas", "rocblas", "amdhip64"],
        frameworks: &[],
        lib_dir: |config| {
            let hip = config.hip_path.clone();
            Some(
                hip.unwrap_or_else(|| PathBuf::from("/opt/rocm"))
                    .join("lib"),
            )
        },
    },
    Backend {
        feature: Feature::Metal,
        on: &[
            ("GGML_METAL", "ON"),
            ("GGML_METAL_NDEBUG", "ON"),
            ("GGML_METAL_EMBED_LIBRARY", "ON"),
        ],
        off: &[("GGML_METAL", "OFF")],
        compilers: None,
        headers: &[],
        static_libs: &["ggml-metal"],
        system_libs: no_libs,
        frameworks: &["Metal", "MetalKit"],
        lib_dir: no_dir,
    },
    Backend {
        feature: Feature::Vulkan,
        on: &[("GGML_VULKAN", "ON")],
        off: &[("GGML_VULKAN", "OFF")],
        compilers: None,
        headers: &["ggml-vulkan.h"],
        static_libs: &["ggml-vulkan"],
        system_libs: |config| match config.target_os.as_str() {
            "windows" => vec!["vulkan-1"],
            _ => vec!["vulkan"],
        },
        frameworks: &[],
        lib_dir: |config| {
            let sub = match config.target_os.as_str() {
                "windows" => "Lib",
                _ => "lib",
            };
            config.vulkan_sdk.as_ref().map(|sdk| sdk.join(sub))
        },
    },
    Backend {
        feature: Feature::Openblas,
        on: &[("GGML_BLAS", "ON"), ("GGML_BLAS_VENDOR", "OpenBLAS")],
        off: &[("GGML_BLAS", "OFF")],
        compilers: None,
        headers: &[],
        static_libs: &["ggml-blas"],
        system_libs: |_| vec!["openblas"],
        frameworks: &[],
        lib_dir: |config| config.openblas_path.as_ref().map(|p| p.join("lib")),
    },
    Backend {
        feature: Feature::Openmp,
        on: &[("GGML_OPENMP", "ON")],
        off: &[("GGML_OPENMP", "OFF")],
        compilers: None,
        headers: &[],
        static_libs: &[],
        system_libs: |config| {
            if config.target_env == "gnu" {
                vec!["gomp"]
            } else if config.target_os == "macos" {
                vec!["omp"]
            } else {
                Vec::new()
            }
        },
        frameworks: &[],
        lib_dir: no_dir,
    },
    Backend {
        feature: Feature::Coreml,
        on: &[
            ("WHISPER_COREML", "ON"),
            ("WHISPER_COREML_ALLOW_FALLBACK", "1"),
        ],
        off: &[("WHISPER_COREML", "OFF")],
        compilers: None,
        headers: &[],
        static_libs: &["whisper.coreml"],
        system_libs: no_libs,
        frameworks: &["CoreML"],
        lib_dir: no_dir,
    },
    Backend {
        feature: Feature::IntelSycl,
        on: &[("GGML_SYCL", "ON"), ("GGML_SYCL_TARGET", "INTEL")],
        off: &[("GGML_SYCL", "OFF")],
        compilers: Some(("icx", "icpx")),
        headers: &[],
        static_libs: &["ggml-sycl"],
        system_libs: no_libs,
        frameworks: &[],
        lib_dir: no_dir,
    },
];

/// The rows of the enabled features, in table order.
pub fn enabled(config: &Config) -> impl Iterator<Item = &'static Backend> + '_ {
    BACKENDS.iter().filter(|b| config.features.has(b.feature))
}

/// x86 target features rustc may enable, and the ggml option each one turns on.
const X86_FLAGS: &[(&str, &str)] = &[
    ("sse4.2", "GGML_SSE42"),
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"),
    ("avxvnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512vnni", "GGML_AVX512_VNNI"),
    ("avx512bf16", "GGML_AVX512_BF16"),
];

/// The cmake defines of every backend (on or off), and the compilers of the enabled ones.
pub fn feature_defines(config: &Config) -> Vec<(String, String)> {
    let mut defines = Vec::new();
    for backend in BACKENDS {
        let set = if config.features.has(backend.feature) {
            backend.on
        } else {
            backend.off
        };
        defines.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    for (c, cxx) in enabled(config).filter_map(|b| b.compilers) {
        defines.push(("CMAKE_C_COMPILER".into(), c.into()));
        defines.push(("CMAKE_CXX_COMPILER".into(), cxx.into()));
    }
    defines
}

/// CPU kernels on in every build, whatever the instruction sets.
///
/// `GGML_LLAMAFILE`: ggml's tiled matrix multiplication (llamafile's tinyBLAS) for the f16 and
/// f32 weights of whisper models, instead of one dot product per output. Off in whisper.cpp's
/// and whisper-rs's builds; on in llama.cpp's. Measured on tiny.en with speech detection, 2
/// threads: 1.47x faster, the same word errors (bench/RESULTS.md, 2026-12-05, "tiled matrix
/// multiplication"). `GGML_LLAMAFILE=OFF` in the environment turns it off.
const CPU_KERNELS: &[(&str, &str)] = &[("GGML_LLAMAFILE", "ON")];

/// CPU defines: [`CPU_KERNELS`], then the instruction sets as [`crate::cpu::choose`] decided:
/// `GGML_NATIVE=ON` for the build machine's CPU, or every x86 ISA option on exactly when rustc
/// enables the matching target feature.
pub fn cpu_defines(config: &Config) -> Vec<(String, String)> {
    let mut defines: Vec<(String, String)> = CPU_KERNELS
        .iter()
        .map(|(k, v)| {
            // Watched even while unset, so that setting it later (to OFF) rebuilds.
            crate::config::env_var(k);
            (k.to_string(), v.to_string())
        })
        .collect();
    if config.cpu.target == CpuTarget::Native {
        defines.push(("GGML_NATIVE".into(), "ON".into()));
        return defines;
    }
    defines.push(("GGML_NATIVE".to_string(), "OFF".to_string()));
    if is_x86(config) {
        for (feature, define) in X86_FLAGS {
            let on = config.target_features.iter().any(|f| f == feature);
            defines.push((
                define.to_string(),
                if on { "ON" } else { "OFF" }.to_string(),
            ));
        }
    }
    defines
}

/// A `cargo::warning` when the build compiles ggml without AVX2 for the very machine it runs on
/// and that machine has AVX2: such a library is several times slower (11x measured on
/// `whisper_full`, bench/RESULTS.md). Silent for cross builds and for builds that have AVX2.
pub fn warn_if_slow(config: &Config) {
    if config.cpu.target != CpuTarget::RustcTarget || !config.native_host || !is_x86(config) {
        return;
    }
    let enabled = |f: &str| config.target_features.iter().any(|t| t == f);
    if enabled("avx2") || !build_machine_has_avx2() {
        return;
    }
    println!(
        "cargo::warning=whisper-steady: ggml is built without AVX2 ({}), but this machine has \
         AVX2: speech recognition will be several times slower. Unset WHISPER_STEADY_CPU (or set \
         it to `native`), or set RUSTFLAGS=\"-C target-cpu=x86-64-v3\" for binaries that run on \
         AVX2 machines.",
        config.cpu.reason
    );
}

fn is_x86(config: &Config) -> bool {
    matches!(config.target_arch.as_str(), "x86_64" | "x86")
}

/// Whether the machine running the build script has AVX2 (only asked when host == target).
fn build_machine_has_avx2() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        false
    }
}

/// Static libraries of the enabled features, in link order (dependents first).
pub fn feature_static_libs(config: &Config) -> Vec<&'static str> {
    enabled(config)
        .flat_map(|b| b.static_libs.iter().copied())
        .collect()
}

/// The headers bindgen reads for the enabled features.
pub fn feature_headers(config: &Config) -> Vec<&'static str> {
    enabled(config)
        .flat_map(|b| b.headers.iter().copied())
        .collect()
}

/// Link lines for the enabled features' system libraries, frameworks (macOS) and their folders.
pub fn emit_feature_link(config: &Config) {
    for backend in enabled(config) {
        if let Some(dir) = (backend.lib_dir)(config) {
            println!("cargo::rustc-link-search=native={}", dir.display());
        }
        for lib in (backend.system_libs)(config) {
            println!("cargo::rustc-link-lib={lib}");
        }
        if config.target_os == "macos" {
            for framework in backend.frameworks {
                println!("cargo::rustc-link-lib=framework={framework}");
            }
        }
    }
}
