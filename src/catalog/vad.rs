//! The Silero VAD model as a named model: `silero`, the speech detector the recognizer uses to
//! answer audio without speech with no words and to cut long audio at pauses. Made locally from
//! the pinned PyPI wheel `silero-vad` 6.2.0 (MIT): its ONNX model converted by
//! [`convert_silero_vad`](crate::convert::convert_silero_vad), byte for byte upstream
//! whisper.cpp's `for-tests-silero-v6.2.0-ggml.bin`, checked against its sha256 and kept in the
//! model cache beside the whisper models.
//!
//! The library does no network I/O of its own accord: [`cached_vad`] only looks in the cache;
//! `download_vad` (cargo feature `download`) fetches and converts. The one line that gives a
//! [`RecognizerConfig`](crate::recognizer::RecognizerConfig) speech detection:
//!
//! ```no_run
//! # #[cfg(feature = "download")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut config = whisper_steady::recognizer::RecognizerConfig::new("ggml-tiny.en.bin");
//! config.vad_model = Some(whisper_steady::catalog::download_vad()?);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "download"))]
//! # fn main() {}
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{cache_dir, PypiWheel};

/// A speech-detection model known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VadSource {
    /// The name users write (`silero`).
    pub name: &'static str,
    /// The version of the package it is converted from.
    pub version: &'static str,
    /// The converted model's file name in the cache.
    pub file_name: &'static str,
    /// The converted model's size in bytes.
    pub size: u64,
    /// The converted model's sha256.
    pub sha256: &'static str,
    /// The wheel the ONNX model comes from.
    pub wheel: PypiWheel,
    /// The ONNX model's path inside the wheel.
    pub onnx: &'static str,
}

/// Silero VAD 6.2.0, from the PyPI wheel `silero-vad` 6.2.0 (as `scripts/fetch-vad-model.sh`).
pub const SILERO_VAD: VadSource = VadSource {
    name: "silero",
    version: "6.2.0",
    file_name: "ggml-silero-v6.2.0.bin",
    size: 885_098,
    sha256: "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987",
    wheel: PypiWheel {
        package: "silero-vad",
        version: "6.2.0",
        wheel: "silero_vad-6.2.0-py3-none-any.whl",
        wheel_sha256: "8a31f1e58e73cdc20820d842f757e678e0ae1b0ee1cb7b8aa50f20f8fd7f7638",
        size: 6_118_499,
        dir: "silero_vad/data",
    },
    onnx: "silero_vad/data/silero_vad.onnx",
};

/// The converted Silero VAD model in the model cache, when it is there with its size (the
/// download only names a verified file; a full hash check is `download_vad`'s). No network.
pub fn cached_vad() -> Option<PathBuf> {
    cached_vad_in(&cache_dir()?)
}

/// [`cached_vad`] in the cache folder `dir`.
pub fn cached_vad_in(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(SILERO_VAD.file_name);
    let size = std::fs::metadata(&path).ok().filter(|m| m.is_file())?.len();
    (size == SILERO_VAD.size).then_some(path)
}

/// Which speech detector a service runs with, as its users write it: `"silero"` (the named
/// model, fetched into the cache when missing), `"off"`, or a path to a ggml VAD model. The
/// server's `recognition.vad_model` and the CLI's `--vad-model` parse into it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VadChoice {
    /// The named Silero VAD model ([`SILERO_VAD`]): the cached file, else fetched (the
    /// default).
    #[default]
    Silero,
    /// No speech detection: whisper alone decides what is speech.
    Off,
    /// This ggml VAD model file.
    File(PathBuf),
}

impl FromStr for VadChoice {
    type Err = std::convert::Infallible;

    /// `silero` (any case) and `off` (or `none`, `false`) are names; anything else a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "silero" => VadChoice::Silero,
            "off" | "none" | "false" => VadChoice::Off,
            _ => VadChoice::File(PathBuf::from(s)),
        })
    }
}

impl std::fmt::Display for VadChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VadChoice::Silero => f.write_str("silero"),
            VadChoice::Off => f.write_str("off"),
            VadChoice::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a service should tell its operator when the named model cannot be had (after the
/// reason), and then run without speech detection.
pub const VAD_UNAVAILABLE: &str = "running WITHOUT speech detection: audio without speech may \
     be answered with invented words, and long audio is not cut at pauses. Fix: run \
     scripts/fetch-vad-model.sh where the Python package index can be reached (or copy \
     ggml-silero-v6.2.0.bin into the model cache), or name a ggml VAD model file; \"off\" \
     turns speech detection off and silences this";

#[cfg(feature = "download")]
impl VadChoice {
    /// The VAD model file this choice names: the named model from the cache, fetched there
    /// first when missing ([`download_vad`](super::download_vad)); the file as given; `None`
    /// for [`Off`](VadChoice::Off). Network I/O only for the named model, and only when it is
    /// not cached.
    pub fn fetch(&self) -> Result<Option<PathBuf>, super::DownloadError> {
        match self {
            VadChoice::Silero => super::download_vad().map(Some),
            VadChoice::Off => Ok(None),
            VadChoice::File(path) => Ok(Some(path.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_as_written() {
        assert_eq!("silero".parse(), Ok(VadChoice::Silero));
        assert_eq!("Silero".parse(), Ok(VadChoice::Silero));
        assert_eq!("off".parse(), Ok(VadChoice::Off));
        assert_eq!("OFF".parse(), Ok(VadChoice::Off));
        assert_eq!(
            "models/ggml-silero.bin".parse(),
            Ok(VadChoice::File("models/ggml-silero.bin".into()))
        );
        assert_eq!(VadChoice::default().to_string(), "silero");
    }

    #[test]
    fn the_cache_holds_only_the_right_size() {
        let dir = std::env::temp_dir().join(format!("vad-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(cached_vad_in(&dir), None);
        std::fs::write(dir.join(SILERO_VAD.file_name), b"short").unwrap();
        assert_eq!(cached_vad_in(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
