//! Compiles `csrc/pool_host.cpp`, which includes the CUDA-free headers that patches 0001–0003,
//! 0008, 0009, 0014 and 0015 add or extend (the VMM pool ledger, the pool policy parser, the pool
//! counters, the legacy pool's bookkeeping, the VMM pool's mapped chunks, the trim's order of
//! waiting and releasing, the registry of pools), for the host. This is what lets the patch
//! regression tests in `tests/` run without a GPU or a CUDA toolkit.

use std::path::Path;

use crate::config::Config;
use crate::BuildError;

/// Builds the host shim into a static library linked into this crate.
pub fn compile(config: &Config, tree: &Path) -> Result<(), BuildError> {
    let shim = config.manifest_dir.join("csrc").join("pool_host.cpp");
    let cuda_dir = tree.join("ggml").join("src").join("ggml-cuda");
    for header in [
        "vmm-ledger.h",
        "pool-policy.h",
        "pool-stats.h",
        "legacy-pool.h",
        "vmm-mappings.h",
        "pool-trim.h",
    ] {
        if !cuda_dir.join(header).is_file() {
            return Err(BuildError::new(format!(
                "the patched tree lacks ggml/src/ggml-cuda/{header}; the patches that add it \
                 (0001-0003, 0008-0010, 0014, 0015) must not be excluded through WHISPER_STEADY_PATCH_EXCLUDE"
            )));
        }
    }
    println!("cargo::rerun-if-changed={}", shim.display());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file(&shim)
        .include(&cuda_dir)
        .warnings(true)
        .try_compile("whisper_steady_pool_host")
        .map_err(|e| BuildError::new(format!("cannot compile csrc/pool_host.cpp: {e}")))
}
