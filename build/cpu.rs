//! Which CPU instruction sets ggml is compiled for: the decision, as a pure function of the
//! build's inputs (no environment access here, so `tests/build/build_cpu.rs` runs it directly).
//!
//! A plain `cargo build --release` must be as fast as whisper-rs, which builds ggml for the
//! build machine. Measured on a 2-core AVX2 machine (issue 14, bench/RESULTS.md): the portable
//! SSE2-only ggml made `whisper_full` 11x slower than the native one. So when the library is built
//! for the machine that builds it (host == target) and the user asked rustc for no particular CPU,
//! ggml gets `GGML_NATIVE=ON`. Binaries that ship to other machines opt out with
//! `WHISPER_STEADY_CPU=portable` (or pick a CPU through rustc: `-C target-cpu=x86-64-v3`).

/// What `WHISPER_STEADY_CPU` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuRequest {
    /// Unset, empty or `auto`: native for a build on the machine it targets, unless RUSTFLAGS
    /// choose a CPU.
    Auto,
    /// `native`: the build machine's instruction sets, always.
    Native,
    /// `portable`: exactly the instruction sets rustc's target enables (the x86-64 baseline,
    /// SSE2, unless RUSTFLAGS raise it).
    Portable,
}

impl CpuRequest {
    /// Parses the variable's value; `Err` carries the message for the user.
    pub fn parse(value: Option<&str>) -> Result<CpuRequest, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("auto") => Ok(CpuRequest::Auto),
            Some("native") => Ok(CpuRequest::Native),
            Some("portable") => Ok(CpuRequest::Portable),
            Some(other) => Err(format!(
                "WHISPER_STEADY_CPU={other:?} is not understood; use `auto` (the default: this \
                 machine's CPU when building for it), `native` or `portable` (rustc's target \
                 features only, for binaries that run on other machines)"
            )),
        }
    }
}

/// What RUSTFLAGS (`CARGO_ENCODED_RUSTFLAGS`) say about the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustflagsCpu {
    /// Neither `target-cpu` nor `target-feature`.
    Unspecified,
    /// `-C target-cpu=native`.
    Native,
    /// Another `target-cpu`, or `target-feature`: the user chose the instruction sets.
    Chosen,
}

impl RustflagsCpu {
    /// Reads cargo's encoded flags (separated by `0x1f`); accepts `-C x`, `-Cx` and
    /// `--codegen x`.
    pub fn from_encoded(encoded: &str) -> RustflagsCpu {
        let words: Vec<&str> = encoded.split('\x1f').filter(|w| !w.is_empty()).collect();
        let mut codegen = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            if (word == "-C" || word == "--codegen") && i + 1 < words.len() {
                codegen.push(words[i + 1]);
                i += 2;
                continue;
            }
            if let Some(rest) = word
                .strip_prefix("-C")
                .or_else(|| word.strip_prefix("--codegen="))
            {
                codegen.push(rest);
            }
            i += 1;
        }
        let mut result = RustflagsCpu::Unspecified;
        for option in codegen {
            let option = option.trim();
            if option == "target-cpu=native" {
                return RustflagsCpu::Native;
            }
            if option.starts_with("target-cpu=") || option.starts_with("target-feature=") {
                result = RustflagsCpu::Chosen;
            }
        }
        result
    }
}

/// The instruction sets ggml is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuTarget {
    /// `GGML_NATIVE=ON`: the build machine's CPU (`-march=native`).
    Native,
    /// `GGML_NATIVE=OFF` and each ISA option on exactly when rustc enables the target feature.
    RustcTarget,
}

/// The decision and the reason for it, in words for the build log and the crate's constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuChoice {
    /// What ggml is compiled for.
    pub target: CpuTarget,
    /// Why, in one sentence.
    pub reason: &'static str,
}

/// Decides. `host` and `target` are cargo's `HOST` and `TARGET` triples.
pub fn choose(request: CpuRequest, rustflags: RustflagsCpu, host: &str, target: &str) -> CpuChoice {
    let (target_cpu, reason) = match (request, rustflags) {
        (CpuRequest::Native, _) => (CpuTarget::Native, "WHISPER_STEADY_CPU=native"),
        (CpuRequest::Portable, _) => (
            CpuTarget::RustcTarget,
            "WHISPER_STEADY_CPU=portable: rustc's target features only",
        ),
        (CpuRequest::Auto, RustflagsCpu::Native) => {
            (CpuTarget::Native, "RUSTFLAGS ask for -C target-cpu=native")
        }
        (CpuRequest::Auto, RustflagsCpu::Chosen) => (
            CpuTarget::RustcTarget,
            "RUSTFLAGS choose the CPU (target-cpu or target-feature): rustc's target features",
        ),
        (CpuRequest::Auto, RustflagsCpu::Unspecified) if host != target => (
            CpuTarget::RustcTarget,
            "cross-compiling (host differs from target): rustc's target features",
        ),
        (CpuRequest::Auto, RustflagsCpu::Unspecified) => (
            CpuTarget::Native,
            "built on the machine it targets with no CPU in RUSTFLAGS: this machine's CPU \
             (WHISPER_STEADY_CPU=portable for binaries that run elsewhere)",
        ),
    };
    CpuChoice {
        target: target_cpu,
        reason,
    }
}
