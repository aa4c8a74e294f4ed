//! Building the patched tree with cmake and telling cargo what to link.

use std::path::{Path, PathBuf};

use crate::backends::{self, Feature};
use crate::config::Config;
use crate::cuda::{self, Toolkit};
use crate::BuildError;

/// Configures and builds whisper.cpp (static libraries) and returns the install prefix.
pub fn build(
    config: &Config,
    tree: &Path,
    toolkit: Option<&Toolkit>,
) -> Result<PathBuf, BuildError> {
    if config.features.has(Feature::Openblas) && config.blas_include_dirs.is_none() {
        return Err(BuildError::new(
            "feature `openblas` needs BLAS_INCLUDE_DIRS set to the folder that holds cblas.h \
             (e.g. /usr/include/openblas after installing libopenblas-dev)",
        ));
    }
    let mut cmake = cmake::Config::new(tree);
    cmake
        // Release (-O3) in every cargo profile: RelWithDebInfo's -O2 made whisper_full twice as
        // slow (bench/RESULTS.md), which every `cargo test` paid. CMAKE_BUILD_TYPE (passed
        // through, see config.rs) still selects another build type for debugging whisper.cpp.
        .profile("Release")
        .define("BUILD_SHARED_LIBS", "OFF")
        .define("WHISPER_BUILD_TESTS", "OFF")
        .define("WHISPER_BUILD_EXAMPLES", "OFF")
        .define("WHISPER_BUILD_SERVER", "OFF")
        .define("WHISPER_ALL_WARNINGS", "OFF")
        .define("WHISPER_ALL_WARNINGS_3RD_PARTY", "OFF")
        .define("GGML_BUILD_TESTS", "OFF")
        .define("GGML_BUILD_EXAMPLES", "OFF")
        .define("CMAKE_POSITION_INDEPENDENT_CODE", "ON")
        .pic(true);

    let mut defines = backends::feature_defines(config);
    defines.extend(backends::cpu_defines(config));
    if let Some(toolkit) = toolkit {
        defines.extend(cuda::cmake_defines(config, toolkit));
        cmake.define("CMAKE_CUDA_FLAGS", "-Xcompiler=-fPIC");
    }
    if let Some(dirs) = &config.blas_include_dirs {
        defines.push(("BLAS_INCLUDE_DIRS".into(), dirs.clone()));
    }
    if let Some(targets) = &config.amdgpu_targets {
        defines.push(("AMDGPU_TARGETS".into(), targets.clone()));
    }
    // The user's GGML_*/CMAKE_*/WHISPER_* variables come last, so they override our choices.
    defines.extend(config.cmake_passthrough.clone());
    for (key, value) in &defines {
        cmake.define(key, value);
    }

    // The cmake crate panics when cmake fails; report that as a build error instead.
    crate::no_panic(
        "cmake",
        "see the cmake output above. cmake and a C++17 compiler must be installed \
         (Debian/Ubuntu: `apt-get install cmake g++`); a GGML_*/CMAKE_*/WHISPER_* variable in the \
         environment is passed to cmake and may be the cause",
        move || cmake.build(),
    )
}

/// Emits the link lines for the libraries cmake built and their system dependencies.
pub fn emit_link(config: &Config, prefix: &Path, toolkit: Option<&Toolkit>) {
    for dir in ["lib", "lib64"] {
        let dir = prefix.join(dir);
        if dir.is_dir() {
            println!("cargo::rustc-link-search=native={}", dir.display());
        }
    }
    // Static libraries, dependents before their dependencies.
    let mut static_libs = vec!["whisper", "ggml"];
    static_libs.extend(backends::feature_static_libs(config));
    static_libs.extend(["ggml-cpu", "ggml-base"]);
    if config.target_os == "macos" && !static_libs.contains(&"ggml-blas") {
        static_libs.push("ggml-blas");
    }
    for lib in static_libs {
        println!("cargo::rustc-link-lib=static={lib}");
    }

    if let Some(stdlib) = cpp_stdlib(config) {
        println!("cargo::rustc-link-lib=dylib={stdlib}");
    }
    if let Some(toolkit) = toolkit {
        cuda::emit_link(config, toolkit);
    }
    emit_system_libs(config);
}

fn cpp_stdlib(config: &Config) -> Option<&'static str> {
    if config.target_env == "msvc" {
        None
    } else if matches!(
        config.target_os.as_str(),
        "macos" | "ios" | "freebsd" | "openbsd"
    ) {
        Some("c++")
    } else if config.target_os == "android" {
        Some("c++_shared")
    } else {
        Some("stdc++")
    }
}

/// System libraries: the platform's, then the enabled backends' (their table rows).
fn emit_system_libs(config: &Config) {
    if config.target_os == "macos" {
        println!("cargo::rustc-link-lib=framework=Accelerate");
        println!("cargo::rustc-link-lib=framework=Foundation");
    }
    backends::emit_feature_link(config);
    if config.target_os == "windows" {
        println!("cargo::rustc-link-lib=advapi32");
    }
}
