//! Compiles `csrc/pool_host.cpp` (at the workspace root, where the patch headers name it), which
//! includes the CUDA-free headers that patches 0001–0003, 0008, 0009, 0014, 0015 and 0020 add or
//! extend (the VMM pool ledger, the pool policy parser, the pool counters, the legacy pool's
//! bookkeeping, the VMM pool's mapped chunks, the trim's order of waiting and releasing, the
//! registry of pools, the growth that makes room), for the host, against the tree whisper-steady's build script patched
//! (`DEP_WHISPER_PATCHED_TREE`). This is what lets the patch regression tests run without a GPU
//! or a CUDA toolkit.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shim = manifest.join("..").join("csrc").join("pool_host.cpp");
    let Some(tree) = std::env::var_os("DEP_WHISPER_PATCHED_TREE") else {
        println!("cargo::error=whisper-steady's build script did not say where it patched whisper.cpp (DEP_WHISPER_PATCHED_TREE)");
        std::process::exit(1);
    };
    let cuda_dir = PathBuf::from(tree)
        .join("ggml")
        .join("src")
        .join("ggml-cuda");
    for header in [
        "vmm-ledger.h",
        "pool-policy.h",
        "pool-stats.h",
        "legacy-pool.h",
        "vmm-mappings.h",
        "pool-trim.h",
        "pool-grow.h",
    ] {
        if !cuda_dir.join(header).is_file() {
            println!(
                "cargo::error=the patched tree lacks ggml/src/ggml-cuda/{header}; the patches that add it \
                 (0001-0003, 0008-0010, 0014, 0015, 0020) must not be excluded through WHISPER_STEADY_PATCH_EXCLUDE"
            );
            std::process::exit(1);
        }
    }
    println!("cargo::rerun-if-changed={}", shim.display());
    println!("cargo::rerun-if-env-changed=DEP_WHISPER_PATCHED_TREE");
    if let Err(e) = cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file(&shim)
        .include(&cuda_dir)
        .warnings(true)
        .try_compile("whisper_steady_pool_host")
    {
        println!("cargo::error=cannot compile csrc/pool_host.cpp: {e}");
        std::process::exit(1);
    }
}
