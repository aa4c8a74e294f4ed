//! The small steps of [`main`](crate::main) that only talk to cargo: which files to watch,
//! the patched tree's place, the versions and the CPU choice handed to the crate.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::{cpu, patches, upstream, BuildError};

/// Tells cargo which files of this crate the build depends on.
pub fn watch_sources(manifest_dir: &Path) {
    for path in [
        "build.rs",
        "build",
        "patches",
        "vendor/whisper-cpp-pin",
        "csrc",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            manifest_dir.join(path).display()
        );
    }
}

/// Copies the pristine tree into `OUT_DIR/whisper.cpp` and applies the patch series, unless the
/// tree there already carries this exact series.
pub fn patch_tree(config: &Config, pristine: &Path) -> Result<PathBuf, BuildError> {
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
/// this crate (`WHISPER_STEADY_CPP_VERSION`), and the patched tree's place to dependents
/// (`DEP_WHISPER_PATCHED_TREE`: the workspace's `pool-host` test crate compiles the patches'
/// CUDA-free headers from there).
pub fn emit_metadata(tree: &Path) -> Result<(), BuildError> {
    let version = upstream::cmake_project_version(tree)?;
    println!("cargo::metadata=patched_tree={}", tree.display());
    println!("cargo::metadata=whisper_cpp_version={version}");
    println!("cargo::rustc-env=WHISPER_STEADY_CPP_VERSION={version}");
    Ok(())
}

/// Tells the crate how ggml's CPU instruction sets were chosen (`whisper_steady::cpu_build`).
pub fn emit_cpu_choice(config: &Config) {
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
