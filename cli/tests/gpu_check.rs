//! `whisper-steady gpu-check` and `quantize` through the built binary. On a machine without a
//! CUDA device (CI), gpu-check refuses to run unless `--allow-no-gpu`, and then proves its
//! CPU-side rows: the shared-context scenario, the recognizer with 4 states, CPU transcription.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_whisper-steady");
/// The test model, or `None` (after printing why) when it is absent and not required.
fn model() -> Option<PathBuf> {
    test_support::model_path()
}

#[test]
fn gpu_check_without_a_gpu_refuses_then_proves_the_cpu_rows() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");

    // `gpu-check` with `flags`, on the test model and jfk.wav, reporting into `json`.
    let gpu_check = |flags: &[&str]| {
        Command::new(BIN)
            .arg("gpu-check")
            .args(flags)
            .arg("--model")
            .arg(&model)
            .arg("--audio")
            .arg(test_support::shared_audio("jfk.wav"))
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap()
    };
    let refused = gpu_check(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no CUDA device"), "{stderr}");
    assert!(
        !json.exists(),
        "nothing is reported when the check does not run"
    );

    let out = gpu_check(&["--allow-no-gpu", "--requests", "8", "--trim-seconds", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let row = |name: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {stdout}"))
            .clone()
    };
    let status = |name: &str| row(name)["status"].as_str().unwrap().to_string();
    for gpu_row in ["device", "pool-vmm", "pool-legacy"] {
        assert_eq!(status(gpu_row), "skip", "{stdout}");
    }
    for cpu_row in [
        "jfk-cpu",
        "shared-unlocked",
        "shared-locked",
        "recognizer-4x50",
        "trim-under-load",
        "worker-kill",
        "timing",
    ] {
        assert_eq!(status(cpu_row), "pass", "{cpu_row}: {stdout}");
    }
    assert_eq!(row("shared-locked")["data"]["correct"], 16, "{stdout}");
    assert_eq!(row("recognizer-4x50")["data"]["correct"], 8, "{stdout}");
    // The CLI serves as its own worker process: killed mid-request, nothing lost.
    assert_eq!(row("worker-kill")["data"]["correct"], 4, "{stdout}");
    assert_eq!(row("worker-kill")["data"]["deaths"], 1, "{stdout}");
    assert_eq!(report["passed"], true);
}

#[test]
fn quantize_refuses_unknown_types_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let bad_type = Command::new(BIN)
        .args(["quantize", "in.bin"])
        .arg(&out)
        .args(["--type", "q3_k"])
        .output()
        .unwrap();
    assert!(!bad_type.status.success());
    assert!(String::from_utf8_lossy(&bad_type.stderr).contains("unknown quantization type"));

    let not_a_model = dir.path().join("not-a-model.bin");
    std::fs::write(&not_a_model, b"RIFF....WAVEfmt ").unwrap();
    let refused = Command::new(BIN)
        .arg("quantize")
        .arg(&not_a_model)
        .arg(&out)
        .args(["--type", "q8_0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a ggml model"), "{stderr}");
    assert!(!out.exists(), "no partial output is left behind");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
