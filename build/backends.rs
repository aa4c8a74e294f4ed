//! One table from Cargo features to ggml/whisper cmake defines and link libraries, and the CPU
//! flags that follow rustc's target.

use crate::config::Config;

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

/// CPU instruction-set defines. ggml's own default (`GGML_NATIVE=ON`) compiles for the build
/// machine, which breaks binaries copied to older CPUs. We follow rustc instead: native only when
/// rustc is asked for `-C target-cpu=native`, otherwise exactly the target features rustc enables.
pub fn cpu_defines(config: &Config) -> Vec<(String, String)> {
    if config.target_cpu_native {
        return vec![("GGML_NATIVE".into(), "ON".into())];
    }
    let mut defines = vec![("GGML_NATIVE".to_string(), "OFF".to_string())];
    if matches!(config.target_arch.as_str(), "x86_64" | "x86") {
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

/// Static libraries of the enabled features, in link order (dependents first).
pub fn feature_static_libs(config: &Config) -> Vec<&'static str> {
    BACKENDS
        .iter()
        .filter(|b| config.has_feature(b.feature))
        .flat_map(|b| b.static_libs.iter().copied())
        .collect()
}
