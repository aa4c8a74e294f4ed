//! Build script of whisper-steady: pinned whisper.cpp 1.8.3, patched, built, bound.
//!
//! This file is the entry cargo runs; `main` reads top to bottom and each step is a small
//! function in its own module under `build/`:
//! 1. [`config::Config::from_env`]: every input, read once;
//! 2. [`upstream::pristine_tree`]: the pinned tree, materialized by `cargo vendor`;
//! 3. [`patches::prepare_tree`]: copy into `OUT_DIR`, verify hashes, apply `patches/series`;
//! 4. [`bindings::generate`]: bindgen over the patched headers;
//! 5. [`native::build`] and [`native::emit_link`]: cmake (CPU flags chosen by [`cpu::choose`],
//!    with a warning when that leaves an AVX2 machine without AVX2), then the link lines.
//!
//! Failures are reported as `cargo::error=` lines that say what to do.

#[path = "build/backends.rs"]
mod backends;
#[path = "build/bindings.rs"]
mod bindings;
#[path = "build/config.rs"]
mod config;
#[path = "build/cpu.rs"]
mod cpu;
#[path = "build/cuda.rs"]
mod cuda;
#[path = "build/error.rs"]
mod error;
#[path = "build/native.rs"]
mod native;
#[path = "build/patches.rs"]
mod patches;
#[path = "build/steps.rs"]
mod steps;
#[path = "build/upstream.rs"]
mod upstream;

use config::Config;
pub use error::{no_panic, BuildError};

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
    steps::watch_sources(&config.manifest_dir);

    let pristine = upstream::pristine_tree(&config)?;
    let tree = steps::patch_tree(&config, &pristine)?;
    bindings::generate(&config, &tree)?;
    steps::emit_metadata(&tree)?;
    steps::emit_cpu_choice(&config);
    if config.docs_rs {
        return Ok(());
    }

    let toolkit = match &config.cuda {
        Some(env) => Some(cuda::find_toolkit(&config, env)?),
        None => None,
    };
    backends::warn_if_slow(&config);
    let prefix = native::build(&config, &tree, toolkit.as_ref())?;
    native::emit_link(&config, &prefix, toolkit.as_ref());
    Ok(())
}
