//! Compile check of the patched CUDA translation unit `ggml/src/ggml-cuda/ggml-cuda.cu` with
//! nvcc for sm_90, with the defines and flags ggml's cmake uses for it. The VMM pool code is only
//! compiled with `GGML_USE_VMM`, which common.cuh defines unless `GGML_CUDA_NO_VMM` is set. It is
//! compiled twice: with `GGML_CUDA_USE_GRAPHS` (llama.cpp's default, `GGML_CUDA_GRAPHS=ON`) and
//! without it (whisper.cpp's default), since patch 0014's trim takes another path in each.
//!
//! Runs when `WHISPER_STEADY_NVCC` names an nvcc (scripts/cuda-compile-check.sh installs one from
//! PyPI wheels and sets it); otherwise it reports a skip. With `WHISPER_STEADY_REQUIRE_NVCC=1` a
//! missing nvcc is a failure, so CI cannot skip it silently.

use std::path::{Path, PathBuf};
use std::process::Command;

const PATCHED: &str = env!("WHISPER_STEADY_PATCHED_TREE");

fn nvcc() -> Option<PathBuf> {
    let required = std::env::var("WHISPER_STEADY_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    match std::env::var_os("WHISPER_STEADY_NVCC") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "WHISPER_STEADY_NVCC={} does not exist",
                path.display()
            );
            Some(path)
        }
        None => {
            assert!(
                !required,
                "WHISPER_STEADY_REQUIRE_NVCC=1 but WHISPER_STEADY_NVCC is not set"
            );
            eprintln!("skipped: set WHISPER_STEADY_NVCC (see scripts/cuda-compile-check.sh)");
            None
        }
    }
}

#[test]
fn patched_ggml_cuda_compiles_for_sm90() {
    compile_for_sm90(true);
}

#[test]
fn patched_ggml_cuda_compiles_for_sm90_without_cuda_graphs() {
    compile_for_sm90(false);
}

fn compile_for_sm90(graphs: bool) {
    let Some(nvcc) = nvcc() else { return };
    let toolkit_include = nvcc
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("include");
    let tree = Path::new(PATCHED);
    let ggml = tree.join("ggml");
    let out = tempfile::tempdir().unwrap();
    let object = out.path().join("ggml-cuda.o");
    let started = std::time::Instant::now();
    let output = Command::new(&nvcc)
        .args(["-std=c++17", "-O3", "-use_fast_math", "-extended-lambda"])
        .args(["--generate-code=arch=compute_90,code=[sm_90]"])
        .args(graphs.then_some("-DGGML_CUDA_USE_GRAPHS"))
        .args([
            "-DGGML_CUDA_PEER_MAX_BATCH_SIZE=128",
            "-DGGML_SCHED_MAX_COPIES=4",
            "-DGGML_USE_CUDA",
            "-DGGML_BACKEND_BUILD",
            "-D_GNU_SOURCE",
            "-D_XOPEN_SOURCE=600",
            "-Xcompiler=-fPIC",
        ])
        .arg(format!("-I{}", ggml.join("include").display()))
        .arg(format!("-I{}", ggml.join("src").display()))
        .arg(format!("-I{}", ggml.join("src/ggml-cuda").display()))
        .arg(format!("-I{}", toolkit_include.display()))
        .arg("-c")
        .arg(ggml.join("src/ggml-cuda/ggml-cuda.cu"))
        .arg("-o")
        .arg(&object)
        .output()
        .expect("nvcc runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nvcc failed on the patched ggml-cuda.cu:\n{stderr}"
    );
    assert!(object.metadata().unwrap().len() > 0);
    eprintln!(
        "patched ggml-cuda.cu compiled for sm_90 (CUDA graphs {}) in {:.1} s",
        if graphs { "on" } else { "off" },
        started.elapsed().as_secs_f64()
    );
    // The object must contain the entry points the patches add.
    let symbols = Command::new("nm").arg("-g").arg(&object).output();
    if let Ok(symbols) = symbols {
        let text = String::from_utf8_lossy(&symbols.stdout);
        for symbol in [
            "ggml_backend_cuda_set_pool_policy",
            "ggml_backend_cuda_get_pool_policy",
            "ggml_backend_cuda_get_pool_stats",
            "ggml_backend_cuda_trim_pools",
        ] {
            assert!(text.contains(symbol), "{symbol} missing from the object");
        }
    }
}
