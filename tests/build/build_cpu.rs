//! The CPU-flag decision of the build script (`build/cpu.rs`, included here as it is), and what
//! the build that runs these tests actually got.

#[path = "../../build/cpu.rs"]
#[allow(dead_code)]
mod cpu;

use cpu::{choose, CpuRequest, CpuTarget, RustflagsCpu};

const HOST: &str = "x86_64-unknown-linux-gnu";

fn encoded(flags: &[&str]) -> String {
    flags.join("\x1f")
}

#[test]
fn rustflags_are_read_in_every_spelling() {
    assert_eq!(RustflagsCpu::from_encoded(""), RustflagsCpu::Unspecified);
    assert_eq!(
        RustflagsCpu::from_encoded(&encoded(&["-C", "opt-level=3", "-Dwarnings"])),
        RustflagsCpu::Unspecified
    );
    for native in [
        encoded(&["-C", "target-cpu=native"]),
        encoded(&["-Ctarget-cpu=native"]),
        encoded(&["--codegen", "target-cpu=native"]),
        encoded(&["--codegen=target-cpu=native"]),
        encoded(&["-C", "target-feature=+avx2", "-C", "target-cpu=native"]),
    ] {
        assert_eq!(
            RustflagsCpu::from_encoded(&native),
            RustflagsCpu::Native,
            "{native:?}"
        );
    }
    for chosen in [
        encoded(&["-C", "target-cpu=x86-64-v3"]),
        encoded(&["-Ctarget-feature=+avx2,+fma"]),
        encoded(&["-C", "target-cpu=x86-64"]),
    ] {
        assert_eq!(
            RustflagsCpu::from_encoded(&chosen),
            RustflagsCpu::Chosen,
            "{chosen:?}"
        );
    }
}

#[test]
fn a_plain_build_for_this_machine_is_native() {
    let choice = choose(CpuRequest::Auto, RustflagsCpu::Unspecified, HOST, HOST);
    assert_eq!(choice.target, CpuTarget::Native);
}

#[test]
fn cross_builds_and_chosen_cpus_follow_rustc() {
    let cross = choose(
        CpuRequest::Auto,
        RustflagsCpu::Unspecified,
        HOST,
        "aarch64-unknown-linux-gnu",
    );
    assert_eq!(cross.target, CpuTarget::RustcTarget);
    let chosen = choose(CpuRequest::Auto, RustflagsCpu::Chosen, HOST, HOST);
    assert_eq!(chosen.target, CpuTarget::RustcTarget);
    let native_flag = choose(CpuRequest::Auto, RustflagsCpu::Native, HOST, HOST);
    assert_eq!(native_flag.target, CpuTarget::Native);
}

#[test]
fn the_variable_overrides_everything() {
    for rustflags in [
        RustflagsCpu::Unspecified,
        RustflagsCpu::Native,
        RustflagsCpu::Chosen,
    ] {
        let portable = choose(CpuRequest::Portable, rustflags, HOST, HOST);
        assert_eq!(portable.target, CpuTarget::RustcTarget);
        let native = choose(CpuRequest::Native, rustflags, HOST, "other");
        assert_eq!(native.target, CpuTarget::Native);
    }
}

#[test]
fn the_variable_is_parsed_strictly() {
    assert_eq!(CpuRequest::parse(None), Ok(CpuRequest::Auto));
    assert_eq!(CpuRequest::parse(Some("")), Ok(CpuRequest::Auto));
    assert_eq!(CpuRequest::parse(Some(" AUTO ")), Ok(CpuRequest::Auto));
    assert_eq!(CpuRequest::parse(Some("Native")), Ok(CpuRequest::Native));
    assert_eq!(
        CpuRequest::parse(Some("portable")),
        Ok(CpuRequest::Portable)
    );
    let error = CpuRequest::parse(Some("fast")).unwrap_err();
    assert!(
        error.contains("WHISPER_STEADY_CPU") && error.contains("portable"),
        "{error}"
    );
}

/// The build these tests run on: built like the README says (no RUSTFLAGS, no
/// WHISPER_STEADY_CPU), ggml must use every instruction set this CPU has that matters, so the
/// library is not the 11x slower portable build. A build that asked for portable is exempt.
#[test]
fn this_build_uses_this_cpu() {
    let build = whisper_steady::cpu_build();
    let info = whisper_steady::SystemInfo::default();
    eprintln!("cpu build: {build:?}; ggml: {info:?}");
    eprintln!("{}", whisper_steady::print_system_info());
    if build.target != whisper_steady::CpuTarget::Native {
        eprintln!(
            "skipped: this build chose rustc's target ({})",
            build.reason
        );
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(info.avx2, std::is_x86_feature_detected!("avx2"));
        assert_eq!(info.fma, std::is_x86_feature_detected!("fma"));
        assert_eq!(info.f16c, std::is_x86_feature_detected!("f16c"));
    }
}

/// The run-time warning agrees with what the build got: silent when ggml has AVX2 or the CPU
/// lacks it, and present exactly when a build without AVX2 runs on an AVX2 CPU.
#[test]
fn the_slow_build_warning_matches_the_build() {
    let info = whisper_steady::SystemInfo::default();
    let warning = whisper_steady::slow_cpu_build_warning();
    #[cfg(target_arch = "x86_64")]
    {
        let slow = !info.avx2 && std::is_x86_feature_detected!("avx2");
        assert_eq!(warning.is_some(), slow, "{warning:?}");
        if let Some(w) = warning {
            assert!(w.contains("AVX2") && w.contains("x86-64-v3"), "{w}");
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert!(warning.is_none() || !info.avx2);
}
