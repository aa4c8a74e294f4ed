//! The patch pipeline: pristine upstream tree in, patched tree out.
//!
//! Steps, in order:
//! 1. [`Series::load`] reads `patches/series` and every patch it names, and splits each patch
//!    into per-file diffs.
//! 2. [`HashTable::load`] reads `patches/upstream.sha256`, the sha256 of every upstream file a
//!    patch touches.
//! 3. [`prepare_tree`] checks every touched file of the pristine tree against the table, copies
//!    the tree to its destination, applies the series with `diffy` (exact context, no fuzz) and
//!    writes a stamp. When the destination already carries the stamp of this very source, series
//!    and table, nothing is copied or applied again.
//!
//! This file is shared by the build script and by `tests/build/pipeline.rs`, so it depends only on
//! `std`, `diffy` and `sha2`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Name of the stamp file written at the root of a patched tree.
pub const STAMP_FILE: &str = ".whisper-steady-patched";

/// What the pipeline can fail with; every variant says what to do about it.
#[derive(Debug)]
pub enum PipelineError {
    /// A file could not be read, written or copied.
    Io { path: PathBuf, source: io::Error },
    /// A patch file is malformed or names no file.
    BadPatch { patch: String, reason: String },
    /// An upstream file touched by a patch differs from the pinned bytes.
    Drift {
        file: String,
        expected: String,
        found: String,
        patch: String,
    },
    /// A patch touches a file that the hash table does not list.
    Unlisted { file: String, patch: String },
    /// A patch creates a file that upstream already has.
    AlreadyExists { file: String, patch: String },
    /// A hunk's context was not found: the patch does not apply.
    DoesNotApply {
        file: String,
        patch: String,
        hunk: String,
    },
    /// `patches/upstream.sha256` is malformed.
    BadTable { line: usize, reason: String },
}

impl PipelineError {
    fn io(path: &Path, source: io::Error) -> Self {
        PipelineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

const REFRESH_HINT: &str = "If you are bumping upstream on purpose: rebase the patches, then run \
scripts/refresh-upstream-hashes.sh to rewrite patches/upstream.sha256 (see docs/patches.md, \"Bumping upstream\").";

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Io { path, source } => {
                write!(f, "cannot access {}: {source}", path.display())
            }
            PipelineError::BadPatch { patch, reason } => {
                write!(
                    f,
                    "patch {patch} is malformed: {reason}. Regenerate it with `diff -u`."
                )
            }
            PipelineError::Drift {
                file,
                expected,
                found,
                patch,
            } => write!(
                f,
                "upstream file {file} does not match the pin: expected sha256 {expected}, found \
                 {found} (touched by patch {patch}). The whisper.cpp tree is not the pinned 1.8.3 \
                 from whisper-rs-sys 0.15.0; unset WHISPER_STEADY_SOURCE_DIR or point it at the \
                 pinned tree. {REFRESH_HINT}"
            ),
            PipelineError::Unlisted { file, patch } => write!(
                f,
                "patch {patch} touches {file}, which patches/upstream.sha256 does not list. \
                 {REFRESH_HINT}"
            ),
            PipelineError::AlreadyExists { file, patch } => write!(
                f,
                "patch {patch} creates {file}, but the upstream tree already has it. {REFRESH_HINT}"
            ),
            PipelineError::DoesNotApply { file, patch, hunk } => write!(
                f,
                "patch {patch} does not apply to {file} ({hunk}): its context is not in the file. \
                 {REFRESH_HINT}"
            ),
            PipelineError::BadTable { line, reason } => write!(
                f,
                "patches/upstream.sha256 line {line}: {reason}. Each line is `<sha256>  <path>` as \
                 written by sha256sum."
            ),
        }
    }
}

impl std::error::Error for PipelineError {}

/// One file's part of a patch.
#[derive(Debug, Clone)]
pub struct FileDiff {
    /// Path relative to the tree root (the `b/` side, prefix stripped).
    pub path: String,
    /// True when the diff creates the file (`--- /dev/null`).
    pub creates: bool,
    /// The unified diff for this file alone, from its `---` line on.
    pub diff: String,
}

/// One numbered patch of the series.
#[derive(Debug, Clone)]
pub struct PatchFile {
    /// File name, as listed in `patches/series`.
    pub name: String,
    /// The per-file diffs, in the order they appear.
    pub files: Vec<FileDiff>,
}

/// The ordered patch series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Patches in application order.
    pub patches: Vec<PatchFile>,
    /// Digest of the series (names and bytes), used for the stamp.
    pub digest: String,
}

impl Series {
    /// Reads `<dir>/series` and the patches it lists, skipping names in `exclude`
    /// (matched against the full file name or its number, e.g. `0004`).
    pub fn load(dir: &Path, exclude: &[String]) -> Result<Series, PipelineError> {
        let series_path = dir.join("series");
        let listing = read_text(&series_path)?;
        let mut patches = Vec::new();
        let mut hasher = Sha256::new();
        for line in listing.lines() {
            let name = line.trim();
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            let number = name.split(['-', '.']).next().unwrap_or(name);
            if exclude.iter().any(|e| e == name || e == number) {
                continue;
            }
            let text = read_text(&dir.join(name))?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
            patches.push(PatchFile {
                name: name.to_string(),
                files: split_patch(name, &text)?,
            });
        }
        Ok(Series {
            patches,
            digest: hex(&hasher.finalize()),
        })
    }

    /// Every existing upstream file the series touches, with the first patch touching it.
    pub fn touched_upstream_files(&self) -> BTreeMap<String, String> {
        let mut created = Vec::new();
        let mut touched = BTreeMap::new();
        for patch in &self.patches {
            for file in &patch.files {
                if file.creates {
                    created.push(file.path.clone());
                } else if !created.contains(&file.path) {
                    touched
                        .entry(file.path.clone())
                        .or_insert_with(|| patch.name.clone());
                }
            }
        }
        touched
    }
}

/// Splits a multi-file unified diff into per-file diffs. Text before the first `--- ` line is the
/// patch header and is ignored. Hunk lengths are followed exactly, so a removed line that starts
/// with `-- ` is never mistaken for a file header.
fn split_patch(name: &str, text: &str) -> Result<Vec<FileDiff>, PipelineError> {
    let bad = |reason: String| PipelineError::BadPatch {
        patch: name.to_string(),
        reason,
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !(lines[i].starts_with("--- ")
            && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ ")))
        {
            i += 1;
            continue;
        }
        let old = header_path(lines[i]);
        let new = header_path(lines[i + 1]);
        let start = i;
        i += 2;
        while i < lines.len() && lines[i].starts_with("@@ ") {
            let (old_len, new_len) = hunk_lengths(lines[i])
                .ok_or_else(|| bad(format!("bad hunk header `{}`", lines[i].trim_end())))?;
            i += 1;
            let (mut old_left, mut new_left) = (old_len, new_len);
            while old_left > 0 || new_left > 0 {
                let line = lines
                    .get(i)
                    .ok_or_else(|| bad(format!("hunk for {new} ends early")))?;
                match line.as_bytes().first() {
                    Some(b' ') | Some(b'\n') => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                    Some(b'-') => old_left = old_left.saturating_sub(1),
                    Some(b'+') => new_left = new_left.saturating_sub(1),
                    Some(b'\\') => {}
                    _ => return Err(bad(format!("unexpected line in hunk for {new}"))),
                }
                i += 1;
            }
            if lines.get(i).is_some_and(|l| l.starts_with('\\')) {
                i += 1;
            }
        }
        let creates = old == "/dev/null";
        let path = strip_prefix(if creates { &new } else { &old });
        if path.is_empty() || path.contains("..") || path.starts_with('/') {
            return Err(bad(format!("unsafe or empty path `{path}`")));
        }
        files.push(FileDiff {
            path,
            creates,
            diff: lines[start..i].concat(),
        });
    }
    if files.is_empty() {
        return Err(bad("it contains no file diff".to_string()));
    }
    Ok(files)
}

fn header_path(line: &str) -> String {
    let rest = &line[4..];
    let rest = rest.trim_end_matches(['\n', '\r']);
    rest.split('\t').next().unwrap_or(rest).to_string()
}

fn strip_prefix(path: &str) -> String {
    path.strip_prefix("a/")
        .or_else(|| path.strip_prefix("b/"))
        .unwrap_or(path)
        .to_string()
}

fn hunk_lengths(header: &str) -> Option<(usize, usize)> {
    let mut parts = header.split_whitespace();
    parts.next()?;
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let len = |r: &str| -> Option<usize> {
        match r.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    Some((len(old)?, len(new)?))
}

/// The committed table of pinned upstream hashes.
#[derive(Debug, Clone, Default)]
pub struct HashTable {
    /// Path relative to the tree root, to lowercase hex sha256.
    pub entries: BTreeMap<String, String>,
    /// Digest of the table text, used for the stamp.
    pub digest: String,
}

impl HashTable {
    /// Reads a `sha256sum`-style table.
    pub fn load(path: &Path) -> Result<HashTable, PipelineError> {
        let text = read_text(path)?;
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (hash, file) =
                line.split_once(char::is_whitespace)
                    .ok_or(PipelineError::BadTable {
                        line: n + 1,
                        reason: "expected a hash and a path".to_string(),
                    })?;
            let file = file.trim().trim_start_matches('*');
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PipelineError::BadTable {
                    line: n + 1,
                    reason: format!("`{hash}` is not a sha256"),
                });
            }
            entries.insert(file.to_string(), hash.to_ascii_lowercase());
        }
        Ok(HashTable {
            entries,
            digest: hex(&Sha256::digest(text.as_bytes())),
        })
    }
}

/// What [`prepare_tree`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tree was copied and this many patches were applied.
    Applied(usize),
    /// The destination already holds this series applied to this pin: nothing was done.
    AlreadyPatched,
}

/// Copies `pristine` to `dest`, verifies the pin and applies the series; or does nothing when
/// `dest` already carries the stamp of the same series and table.
pub fn prepare_tree(
    pristine: &Path,
    dest: &Path,
    series: &Series,
    table: &HashTable,
) -> Result<Outcome, PipelineError> {
    // The pin is checked on every run: it is cheap (a few files) and catches a source tree that
    // changed under an unchanged destination.
    verify_upstream(pristine, series, table)?;
    let stamp = stamp_text(pristine, series, table);
    let stamp_path = dest.join(STAMP_FILE);
    if fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(Outcome::AlreadyPatched);
    }
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| PipelineError::io(dest, e))?;
    }
    copy_tree(pristine, dest)?;
    apply_series(dest, series)?;
    fs::write(&stamp_path, stamp).map_err(|e| PipelineError::io(&stamp_path, e))?;
    Ok(Outcome::Applied(series.patches.len()))
}

/// What the destination was made from: the source tree, the series and the table.
fn stamp_text(pristine: &Path, series: &Series, table: &HashTable) -> String {
    let names: Vec<&str> = series.patches.iter().map(|p| p.name.as_str()).collect();
    format!(
        "source {}\nseries {}\ntable {}\npatches {}\n",
        pristine.display(),
        series.digest,
        table.digest,
        names.join(" ")
    )
}

/// Checks every upstream file the series touches against the table, and that files the series
/// creates do not exist yet.
pub fn verify_upstream(
    tree: &Path,
    series: &Series,
    table: &HashTable,
) -> Result<(), PipelineError> {
    for (file, patch) in series.touched_upstream_files() {
        let expected = table
            .entries
            .get(&file)
            .ok_or_else(|| PipelineError::Unlisted {
                file: file.clone(),
                patch: patch.clone(),
            })?;
        let found = sha256_file(&tree.join(&file))?;
        if &found != expected {
            return Err(PipelineError::Drift {
                file,
                expected: expected.clone(),
                found,
                patch,
            });
        }
    }
    for patch in &series.patches {
        for file in patch.files.iter().filter(|f| f.creates) {
            if tree.join(&file.path).exists() {
                return Err(PipelineError::AlreadyExists {
                    file: file.path.clone(),
                    patch: patch.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Applies every patch of the series to `tree`, in order, with exact context.
pub fn apply_series(tree: &Path, series: &Series) -> Result<(), PipelineError> {
    for patch in &series.patches {
        for file in &patch.files {
            let target = tree.join(&file.path);
            let base = if file.creates {
                String::new()
            } else {
                read_text(&target)?
            };
            let parsed =
                diffy::Patch::from_str(&file.diff).map_err(|e| PipelineError::BadPatch {
                    patch: patch.name.clone(),
                    reason: format!("{}: {e}", file.path),
                })?;
            let patched =
                diffy::apply(&base, &parsed).map_err(|e| PipelineError::DoesNotApply {
                    file: file.path.clone(),
                    patch: patch.name.clone(),
                    hunk: e.to_string(),
                })?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
            }
            fs::write(&target, patched).map_err(|e| PipelineError::io(&target, e))?;
        }
    }
    Ok(())
}

/// Lowercase hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, PipelineError> {
    let bytes = fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_text(path: &Path) -> Result<String, PipelineError> {
    fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))
}

/// Recursive copy of regular files and directories (symlinks are followed).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), PipelineError> {
    fs::create_dir_all(to).map_err(|e| PipelineError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| PipelineError::io(from, e))? {
        let entry = entry.map_err(|e| PipelineError::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| PipelineError::io(&src, e))?;
            // The registry copy is read-only; the working copy must be writable to patch it.
            let mut perms = fs::metadata(&dst)
                .map_err(|e| PipelineError::io(&dst, e))?
                .permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&dst, perms).map_err(|e| PipelineError::io(&dst, e))?;
        }
    }
    Ok(())
}
