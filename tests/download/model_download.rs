//! Models by name: the download code against a server on loopback (never the internet): a
//! whole transfer, one cut short and resumed with a Range request, a server that ignores the
//! Range, a wrong hash, a missing file, and the cache the CLI and server resolve names in.

#![cfg(feature = "download")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use whisper_steady::catalog::{self, download_file, DownloadError, Progress};

/// How the test server answers one request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Honours `Range`; sends everything.
    Whole,
    /// Declares the whole length but closes after this many bytes of body.
    CutAfter(usize),
    /// Always 200 with the whole file, whatever `Range` says.
    IgnoreRange,
    /// 404.
    Missing,
}

/// Serves `body` to one request per entry of `script`, in order; returns the address and the
/// `Range` header of each request (`None` when absent).
fn serve(body: Vec<u8>, script: Vec<Behaviour>) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    std::thread::spawn(move || {
        for behaviour in script {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().trim_end_matches('-').to_owned());
                }
            }
            seen.lock().unwrap().push(range.clone());
            let mut out = stream;
            let start: usize = range.as_deref().map_or(0, |r| r.parse().unwrap());
            let (status, from) = match behaviour {
                Behaviour::Missing => {
                    let _ = out.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                Behaviour::IgnoreRange => ("200 OK", 0),
                Behaviour::Whole | Behaviour::CutAfter(_) if start > 0 => {
                    ("206 Partial Content", start)
                }
                _ => ("200 OK", 0),
            };
            let rest = &body[from..];
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                rest.len()
            );
            out.write_all(head.as_bytes()).unwrap();
            let send = match behaviour {
                Behaviour::CutAfter(n) => &rest[..n.min(rest.len())],
                _ => rest,
            };
            let _ = out.write_all(send);
            let _ = out.flush();
        }
    });
    (addr, ranges)
}

/// A fake model: bytes with a known sha256.
fn payload(len: usize) -> (Vec<u8>, String) {
    let body: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let sha = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, sha)
}

fn part_of(dest: &Path) -> std::path::PathBuf {
    dest.with_file_name(format!(
        "{}.part",
        dest.file_name().unwrap().to_string_lossy()
    ))
}

#[test]
fn a_whole_transfer_is_verified_and_named() {
    let (body, sha) = payload(300_000);
    let (addr, ranges) = serve(body.clone(), vec![Behaviour::Whole]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ggml-test.bin");
    let mut seen = Vec::new();
    download_file(
        &format!("http://{addr}/ggml-test.bin"),
        &dest,
        body.len() as u64,
        &sha,
        &mut |p: Progress| seen.push(p),
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!part_of(&dest).exists());
    assert_eq!(*ranges.lock().unwrap(), [None]);
    assert!(seen.windows(2).all(|w| w[0].received <= w[1].received));
    assert_eq!(seen.last().unwrap().received, body.len() as u64);
}

#[test]
fn a_transfer_cut_short_keeps_its_bytes_and_resumes_with_a_range() {
    let (body, sha) = payload(500_000);
    let (addr, ranges) = serve(
        body.clone(),
        vec![Behaviour::CutAfter(123_456), Behaviour::Whole],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ggml-test.bin");
    let url = format!("http://{addr}/ggml-test.bin");
    let err = download_file(&url, &dest, body.len() as u64, &sha, &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            DownloadError::Transport { .. } | DownloadError::Incomplete { .. }
        ),
        "{err:?}"
    );
    assert!(!dest.exists(), "no half file under the model's name");
    assert_eq!(std::fs::metadata(part_of(&dest)).unwrap().len(), 123_456);

    download_file(&url, &dest, body.len() as u64, &sha, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(
        *ranges.lock().unwrap(),
        [None, Some("123456".to_owned())],
        "the second request resumed where the first stopped"
    );
}

#[test]
fn a_server_that_ignores_the_range_sends_it_all_again() {
    let (body, sha) = payload(200_000);
    let (addr, _) = serve(
        body.clone(),
        vec![Behaviour::CutAfter(50_000), Behaviour::IgnoreRange],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ggml-test.bin");
    let url = format!("http://{addr}/ggml-test.bin");
    assert!(download_file(&url, &dest, body.len() as u64, &sha, &mut |_| {}).is_err());
    download_file(&url, &dest, body.len() as u64, &sha, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn a_wrong_hash_deletes_the_download_and_a_missing_file_is_an_http_error() {
    let (body, _) = payload(100_000);
    let (_, wrong) = payload(99_999);
    let (addr, _) = serve(body.clone(), vec![Behaviour::Whole, Behaviour::Missing]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("ggml-test.bin");
    let url = format!("http://{addr}/ggml-test.bin");
    match download_file(&url, &dest, body.len() as u64, &wrong, &mut |_| {}) {
        Err(DownloadError::HashMismatch { expected, .. }) => assert_eq!(expected, wrong),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(!dest.exists() && !part_of(&dest).exists());
    match download_file(&url, &dest, body.len() as u64, &wrong, &mut |_| {}) {
        Err(DownloadError::Http { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    // A server that sends more than the model's size is cut off.
    let (addr, _) = serve(body.clone(), vec![Behaviour::Whole]);
    let url = format!("http://{addr}/ggml-test.bin");
    assert!(matches!(
        download_file(&url, &dest, 1_000, &wrong, &mut |_| {}),
        Err(DownloadError::TooLarge { expected: 1_000 })
    ));
    assert!(!part_of(&dest).exists());
}

#[test]
fn a_name_is_fetched_into_the_cache_then_resolved_there() {
    // The only test of this module that sets the environment (the others never read it).
    let _env = crate::CACHE_VAR.lock().unwrap_or_else(|e| e.into_inner());
    let model = catalog::find("tiny.en-q5_1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The published file's size, with bytes that cannot have its sha256.
    let fake = vec![0u8; model.size as usize];
    let (addr, ranges) = serve(fake, vec![Behaviour::Whole]);
    std::env::set_var("WHISPER_STEADY_MODEL_CACHE", dir.path());
    std::env::set_var("WHISPER_STEADY_MODEL_BASE_URL", format!("http://{addr}/"));
    let err = catalog::download(model, &mut |_| {}).unwrap_err();
    assert!(matches!(err, DownloadError::HashMismatch { .. }), "{err}");
    assert_eq!(ranges.lock().unwrap().len(), 1);
    assert!(matches!(
        catalog::resolve(Path::new("tiny.en-q5_1")),
        Err(catalog::ResolveError::NotDownloaded {
            name: "tiny.en-q5_1",
            ..
        })
    ));
    // A verified file in the cache (as the download names it) resolves, without a transfer.
    let in_cache = dir.path().join(model.file_name());
    std::fs::write(&in_cache, vec![1u8; model.size as usize]).unwrap();
    assert_eq!(
        catalog::resolve(Path::new("tiny.en-q5_1")).unwrap(),
        in_cache
    );
    assert_eq!(catalog::download(model, &mut |_| {}).unwrap(), in_cache);
    let mut file = std::fs::File::open(&in_cache).unwrap();
    let mut first = [0u8; 1];
    file.read_exact(&mut first).unwrap();
    assert_eq!(first, [1]);
}
