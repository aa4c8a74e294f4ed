//! Where the pristine whisper.cpp tree comes from.
//!
//! By default cargo itself materializes the pinned package: `cargo vendor --versioned-dirs
//! --locked` over the carrier manifest in `vendor/whisper-cpp-pin`, whose committed lock file pins
//! whisper-rs-sys 0.15.0 by checksum. Cargo verifies the bytes, works offline once its cache holds
//! the package, and never lets us modify its registry copy (we only read the vendored copy under
//! `OUT_DIR`). The escape hatch `WHISPER_STEADY_SOURCE_DIR` names an existing tree instead; it
//! must look like whisper.cpp 1.8.3, and the patch pipeline then checks its bytes against the pin.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Config;
use crate::BuildError;

/// The upstream version this crate pins.
pub const PINNED_VERSION: &str = "1.8.3";
/// The registry package that carries it, and the folder inside that package.
const CARRIER_PACKAGE: &str = "whisper-rs-sys-0.15.0";
const TREE_IN_PACKAGE: &str = "whisper.cpp";

/// Returns the root of a pristine whisper.cpp tree.
pub fn pristine_tree(config: &Config) -> Result<PathBuf, BuildError> {
    match &config.source_dir {
        Some(dir) => validate_source_dir(dir),
        None => vendor_pinned_package(config),
    }
}

fn carrier_manifest(config: &Config) -> PathBuf {
    config
        .manifest_dir
        .join("vendor")
        .join("whisper-cpp-pin")
        .join("Cargo.toml")
}

fn vendor_pinned_package(config: &Config) -> Result<PathBuf, BuildError> {
    let vendor_dir = config.out_dir.join("upstream");
    let tree = vendor_dir.join(CARRIER_PACKAGE).join(TREE_IN_PACKAGE);
    if tree.join("CMakeLists.txt").is_file() && vendor_dir.join(".complete").is_file() {
        return Ok(tree);
    }
    let manifest = carrier_manifest(config);
    let output = Command::new(&config.cargo)
        .arg("vendor")
        .arg("--versioned-dirs")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg(&vendor_dir)
        .output()
        .map_err(|e| {
            BuildError::new(format!(
                "could not run `{} vendor` to materialize whisper.cpp {PINNED_VERSION}: {e}",
                config.cargo.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BuildError::new(format!(
            "`cargo vendor` could not materialize whisper.cpp {PINNED_VERSION} from the pinned \
             package {CARRIER_PACKAGE}: {}. Run `cargo fetch --manifest-path {}` once with network \
             access (afterwards the build works offline), or set WHISPER_STEADY_SOURCE_DIR to a \
             whisper.cpp {PINNED_VERSION} tree.",
            stderr.trim().replace('\n', " | "),
            manifest.display()
        )));
    }
    if !tree.join("CMakeLists.txt").is_file() {
        return Err(BuildError::new(format!(
            "`cargo vendor` succeeded but {} has no CMakeLists.txt; the carrier manifest \
             vendor/whisper-cpp-pin no longer points at a package that ships whisper.cpp",
            tree.display()
        )));
    }
    fs::write(vendor_dir.join(".complete"), PINNED_VERSION)
        .map_err(|e| BuildError::new(format!("cannot write to {}: {e}", vendor_dir.display())))?;
    Ok(tree)
}

/// Checks that a user-supplied tree looks like whisper.cpp at the pinned version. Its bytes are
/// verified later by the patch pipeline.
fn validate_source_dir(dir: &Path) -> Result<PathBuf, BuildError> {
    let hint = format!(
        "WHISPER_STEADY_SOURCE_DIR must name the root of a whisper.cpp {PINNED_VERSION} tree (the \
         folder holding CMakeLists.txt, include/whisper.h and ggml/); unset it to use the pinned \
         package"
    );
    if !dir.is_dir() {
        return Err(BuildError::new(format!(
            "WHISPER_STEADY_SOURCE_DIR={} is not a directory. {hint}",
            dir.display()
        )));
    }
    for needed in ["CMakeLists.txt", "include/whisper.h", "ggml/CMakeLists.txt"] {
        if !dir.join(needed).is_file() {
            return Err(BuildError::new(format!(
                "WHISPER_STEADY_SOURCE_DIR={} lacks {needed}. {hint}",
                dir.display()
            )));
        }
    }
    let version = cmake_project_version(dir)?;
    if version != PINNED_VERSION {
        return Err(BuildError::new(format!(
            "WHISPER_STEADY_SOURCE_DIR={} holds whisper.cpp {version}, but this crate pins \
             {PINNED_VERSION}. {hint}",
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

/// Reads `project("whisper.cpp" VERSION x.y.z)` from a tree's CMakeLists.txt.
pub fn cmake_project_version(tree: &Path) -> Result<String, BuildError> {
    let path = tree.join("CMakeLists.txt");
    let text = fs::read_to_string(&path)
        .map_err(|e| BuildError::new(format!("cannot read {}: {e}", path.display())))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("project(\"whisper.cpp\" VERSION "))
        .map(|rest| rest.trim_end_matches(')').trim().to_string())
        .ok_or_else(|| {
            BuildError::new(format!(
                "{} declares no `project(\"whisper.cpp\" VERSION ...)`; it is not a whisper.cpp tree",
                path.display()
            ))
        })
}
