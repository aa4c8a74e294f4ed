//! Build script of whisper-steady: pinned whisper.cpp 1.8.3, patched, built, bound.
//!
//! `main` reads top to bottom; each step is a small function in its own module:
//! 1. [`config::Config::from_env`]: every input, read once;
//! 2. [`upstream::pristine_tree`]: the pinned tree, materialized by `cargo vendor`;
//! 3. [`patches::prepare_tree`]: copy into `OUT_DIR`, verify hashes, apply `patches/series`;
//! 4. [`host_shim::compile`]: the CUDA-free pool headers, built for the host tests;
//! 5. [`bindings::generate`]: bindgen over the patched headers;
//! 6. [`native::build`] and [`native::emit_link`]: cmake (CPU flags chosen by [`cpu::choose`],
//!    with a warning when that leaves an AVX2 machine without AVX2), then the link lines.
//!
//! Failures are reported as `cargo::error=` lines that say what to do.

mod backends;
mod bindings;
mod config;
mod cpu;
mod cuda;
mod host_shim;
mod native;
mod patches;
mod upstream;

use std::fmt;
use std::path::Path;

use config::Config;

/// A build failure, with a message that tells the user what to do.
#[derive(Debug)]
pub struct BuildError(String);

impl BuildError {
    /// Wraps a message.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError(message.into())
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<patches::PipelineError> for BuildError {
    fn from(e: patches::PipelineError) -> Self {
        BuildError(e.to_string())
    }
}

fn main() {
    if let Err(error) = run() {
        for line in error.to_string().lines().filter(|l| !l.trim().is_empty()) {
            println!("cargo::error={line}");
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), BuildError> {
    let config = Config::from_env()?;
    watch_sources(&config.manifest_dir);

    let pristine = upstream::pristine_tree(&config)?;
    let tree = patch_tree(&config, &pristine)?;
    host_shim::compile(&config, &tree)?;
    bindings::generate(&config, &tree)?;
    emit_metadata(&tree)?;
    emit_cpu_choice(&config);
    if config.docs_rs {
        return Ok(());
    }

    let toolkit = if config.has_feature("cuda") {
        Some(cuda::find_toolkit(&config)?)
    } else {
        None
    };
    backends::warn_if_slow(&config);
    let prefix = native::build(&config, &tree, toolkit.as_ref())?;
    native::emit_link(&config, &prefix, toolkit.as_ref());
    Ok(())
}

/// Runs `f`, turning a panic inside it (the cmake and bindgen crates panic on failure) into a
/// [`BuildError`] that names the tool and says what to do, without a backtrace.
fn no_panic<T>(tool: &str, hint: &str, f: impl FnOnce() -> T) -> Result<T, BuildError> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        let message = message
            .replace("build script failed, must exit now", "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        BuildError::new(format!("{tool} failed: {message}. Hint: {hint}"))
    })
}

/// Tells cargo which files of this crate the build depends on.
fn watch_sources(manifest_dir: &Path) {
    for path in ["build", "patches", "vendor/whisper-cpp-pin", "csrc"] {
        println!(
            "cargo::rerun-if-changed={}",
            manifest_dir.join(path).display()
        );
    }
}

/// Copies the pristine tree into `OUT_DIR/whisper.cpp` and applies the patch series, unless the
/// tree there already carries this exact series.
fn patch_tree(config: &Config, pristine: &Path) -> Result<std::path::PathBuf, BuildError> {
    let patch_dir = config.manifest_dir.join("patches");
    let series = patches::Series::load(&patch_dir, &config.patch_exclude)?;
    let table = patches::HashTable::load(&patch_dir.join("upstream.sha256"))?;
    let tree = config.out_dir.join("whisper.cpp");
    patches::prepare_tree(pristine, &tree, &series, &table)?;
    println!(
        "cargo::rustc-env=WHISPER_STEADY_PATCHED_TREE={}",
        tree.display()
    );
    println!(
        "cargo::rustc-env=WHISPER_STEADY_PRISTINE_TREE={}",
        pristine.display()
    );
    Ok(tree)
}

/// Publishes the whisper.cpp version to dependents (`DEP_WHISPER_WHISPER_CPP_VERSION`) and to
/// this crate (`WHISPER_STEADY_CPP_VERSION`).
fn emit_metadata(tree: &Path) -> Result<(), BuildError> {
    let version = upstream::cmake_project_version(tree)?;
    println!("cargo::metadata=whisper_cpp_version={version}");
    println!("cargo::rustc-env=WHISPER_STEADY_CPP_VERSION={version}");
    Ok(())
}

/// Tells the crate how ggml's CPU instruction sets were chosen (`whisper_steady::cpu_build`).
fn emit_cpu_choice(config: &Config) {
    let target = match config.cpu.target {
        cpu::CpuTarget::Native => "native",
        cpu::CpuTarget::RustcTarget => "rustc-target",
    };
    println!("cargo::rustc-env=WHISPER_STEADY_CPU_TARGET={target}");
    println!(
        "cargo::rustc-env=WHISPER_STEADY_CPU_REASON={}",
        config.cpu.reason
    );
}
