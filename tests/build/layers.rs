//! The library's layers: no module of `src/` uses one above it (doc comments and the crate
//! root's re-exports aside). The order, lowest first, is the table below; docs/building.md
//! describes each module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each module of `src/` with the modules it may use (lower layers only).
const LAYERS: &[(&str, &[&str])] = &[
    ("sys", &[]),
    ("audio", &[]),
    ("wer", &[]),
    ("device", &["sys"]),
    ("cuda", &["sys"]),
    ("ggml", &["sys"]),
    ("model", &["sys", "ggml"]),
    ("convert", &["sys", "audio", "ggml", "model"]),
    ("catalog", &["sys", "audio", "ggml", "model", "convert"]),
    ("api", &["sys", "device", "cuda", "ggml", "model"]),
    (
        "recognizer",
        &["sys", "audio", "device", "cuda", "ggml", "model", "api"],
    ),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The `crate::<module>` paths a file's code (not its comments) names.
fn modules_used(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut used = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let is_module = rest[name.len()..].starts_with("::");
            if !name.is_empty() && is_module {
                used.insert(name);
            }
        }
    }
    used
}

#[test]
fn no_module_of_the_library_uses_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut wrong = Vec::new();
    for (module, allowed) in LAYERS {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        rust_files(&src.join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "src/{module} is gone: update LAYERS");
        for file in files {
            for used in modules_used(&file) {
                let known = modules.contains(used.as_str());
                if known && used != *module && !allowed.contains(&used.as_str()) {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
    // Every module of src/ is in the table (a new one must be placed).
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if name != "lib" {
            assert!(
                modules.contains(name.as_str()),
                "src/{name} is not in LAYERS"
            );
        }
    }
}
