//! Models by the PyPI route (`catalog::download_from_pypi`, `catalog::tiny_en_from_pypi`): the
//! pinned wheels that `scripts/fetch-test-model.sh` and `scripts/fetch-multilingual-test-model.sh`
//! left beside their models are unpacked, joined, converted and verified in a fresh cache, and
//! the name then resolves there. No network: the wheels are the cached ones. Also: the scripts
//! pin what the catalog pins.

#![cfg(feature = "download")]

use crate::common;

use std::path::{Path, PathBuf};

use whisper_steady::model::catalog::{self, PypiSource, BASE_PYPI, PYPI_SOURCES, TINY_EN_PYPI};

use crate::CACHE_VAR;

/// Each PyPI source and the fetch script that makes the same model.
const SCRIPTS: [(&PypiSource, &str); 2] = [
    (&TINY_EN_PYPI, "scripts/fetch-test-model.sh"),
    (&BASE_PYPI, "scripts/fetch-multilingual-test-model.sh"),
];

/// Copies `source`'s wheels from beside `model` (the fetch script's cache) into a fresh cache,
/// fetches the model there with `fetch`, and checks that it is `model`'s bytes, that the name
/// resolves to it, and that only the wheels and the model are left.
fn from_cached_wheels(model: &Path, source: &PypiSource, fetch: fn() -> PathBuf) {
    let wheels: Vec<PathBuf> = source
        .wheels
        .iter()
        .map(|w| model.with_file_name(w.wheel))
        .collect();
    if let Some(missing) = wheels.iter().find(|w| !w.is_file()) {
        let (_, script) = SCRIPTS.iter().find(|(s, _)| s.name == source.name).unwrap();
        test_support::skip_or_fail(&format!("{} is missing", missing.display()), script);
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    for wheel in &wheels {
        std::fs::copy(wheel, cache.path().join(wheel.file_name().unwrap())).unwrap();
    }
    let _env = CACHE_VAR.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("WHISPER_STEADY_MODEL_CACHE", cache.path());
    let name = Path::new(source.name);
    assert!(matches!(
        catalog::resolve(name),
        Err(catalog::ResolveError::NotDownloaded { .. })
    ));
    let path = fetch();
    let file_name = catalog::find(source.name).unwrap().file_name();
    assert_eq!(path, cache.path().join(file_name));
    assert!(
        std::fs::read(&path).unwrap() == std::fs::read(model).unwrap(),
        "{} differs from {}",
        path.display(),
        model.display()
    );
    assert_eq!(catalog::resolve(name).unwrap(), path);
    // Nothing is left of the work folder.
    let left: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), wheels.len() + 1, "{left:?}");
}

#[test]
fn tiny_en_from_the_cached_wheel_is_converted_verified_and_resolved() {
    let Some(model) = common::model_path() else {
        return;
    };
    from_cached_wheels(&model, &TINY_EN_PYPI, || {
        catalog::tiny_en_from_pypi().unwrap()
    });
}

#[test]
fn base_from_the_two_cached_wheels_is_joined_converted_verified_and_resolved() {
    let Some(model) = common::multilingual_model_path() else {
        return;
    };
    from_cached_wheels(&model, &BASE_PYPI, || {
        catalog::download_from_pypi(catalog::find("base").unwrap()).unwrap()
    });
}

#[test]
fn the_fetch_scripts_pin_what_the_catalog_pins() {
    assert_eq!(SCRIPTS.len(), PYPI_SOURCES.len());
    for (source, script) in SCRIPTS {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(script)).unwrap();
        let mut pins = vec![source.sha256.to_owned()];
        for w in source.wheels {
            pins.push(format!(
                "{} {} {} {}",
                w.package, w.version, w.wheel, w.wheel_sha256
            ));
        }
        pins.extend(source.split.iter().map(|f| f.sha256.to_owned()));
        for pin in pins {
            assert!(text.contains(&pin), "{script} does not pin {pin}");
        }
    }
}
