//! One table from Cargo features to ggml/whisper cmake defines and link libraries, and the CPU
//! flags that [`crate::cpu`] chose.

use crate::config::Config;
use crate::cpu::CpuTarget;

/// A Cargo feature and what it means for cmake and the linker.
pub struct Backend {
    /// Cargo feature name (as in whisper-rs).
    pub feature: &'static str,
    /// cmake defines when the feature is on.
    pub on: &'static [(&'static str, &'static str)],
    /// cmake defines when the feature is off (ggml turns some of these on by default).
    pub off: &'static [(&'static str, &'static str)],
    /// Static libraries built by cmake that the feature adds.
    pub static_libs: &'static [&'static str],
}

/// Every backend feature. The CPU backend is always built.
pub const BACKENDS: &[Backend] = &[
    Backend {
        feature: "cuda",
        on: &[("GGML_CUDA", "ON"), ("GGML_CUDA_FA_ALL_QUANTS", "OFF")],
        off: &[("GGML_CUDA", "OFF")],
        static_libs: &["ggml-cuda"],
    },
    Backend {
        feature: "hipblas",
        on: &[("GGML_HIP", "ON")],
        off: &[("GGML_HIP", "OFF")],
        static_libs: &["ggml-hip"],
    },
    Backend {
        feature: "metal",
        on: &[
            ("GGML_METAL", "ON"),
            ("GGML_METAL_NDEBUG", "ON"),
            ("GGML_METAL_EMBED_LIBRARY", "ON"),
        ],
        off: &[("GGML_METAL", "OFF")],
        static_libs: &["ggml-metal"],
    },
    Backend {
        feature: "vulkan",
        on: &[("GGML_VULKAN", "ON")],
        off: &[("GGML_VULKAN", "OFF")],
        static_libs: &["ggml-vulkan"],
    },
    Backend {
        feature: "openblas",
        on: &[("GGML_BLAS", "ON"), ("GGML_BLAS_VENDOR", "OpenBLAS")],
        off: &[("GGML_BLAS", "OFF")],
        static_libs: &["ggml-blas"],
    },
    Backend {
        feature: "openmp",
        on: &[("GGML_OPENMP", "ON")],
        off: &[("GGML_OPENMP", "OFF")],
        static_libs: &[],
    },
    Backend {
        feature: "coreml",
        on: &[
            ("WHISPER_COREML", "ON"),
            ("WHISPER_COREML_ALLOW_FALLBACK", "1"),
        ],
        off: &[("WHISPER_COREML", "OFF")],
        static_libs: &["whisper.coreml"],
    },
    Backend {
        feature: "intel-sycl",
        on: &[("GGML_SYCL", "ON"), ("GGML_SYCL_TARGET", "INTEL")],
        off: &[("GGML_SYCL", "OFF")],
        static_libs: &["ggml-sycl"],
    },
];

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

/// The cmake defines for the enabled features.
pub fn feature_defines(config: &Config) -> Vec<(String, String)> {
    let mut defines = Vec::new();
    for backend in BACKENDS {
        let set = if config.has_feature(backend.feature) {
            backend.on
        } else {
            backend.off
        };
        defines.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    defines
}

/// CPU instruction-set defines, as [`crate::cpu::choose`] decided: `GGML_NATIVE=ON` for the build
/// machine's CPU, or every x86 ISA option on exactly when rustc enables the matching target
/// feature.
pub fn cpu_defines(config: &Config) -> Vec<(String, String)> {
    if config.cpu.target == CpuTarget::Native {
        return vec![("GGML_NATIVE".into(), "ON".into())];
    }
    let mut defines = vec![("GGML_NATIVE".to_string(), "OFF".to_string())];
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
    BACKENDS
        .iter()
        .filter(|b| config.has_feature(b.feature))
        .flat_map(|b| b.static_libs.iter().copied())
        .collect()
}
