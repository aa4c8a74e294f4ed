//! The cache's bookkeeping: when each cached model was last used (a small index file beside
//! the models, `last-used`, so that the model files themselves are never touched), and eviction
//! of the least recently used ones above a size limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{cached_in, KnownModel, KNOWN_MODELS};

/// The index file's name in the cache folder: a line `FILE_NAME UNIX_SECONDS` per model.
pub const LAST_USED_FILE: &str = "last-used";

/// A known model in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// Its catalog entry.
    pub model: &'static KnownModel,
    /// Its file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last used (resolved by a server or the CLI); `None` if never recorded.
    pub last_used: Option<SystemTime>,
}

fn read_index(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(LAST_USED_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, seconds) = line.rsplit_once(' ')?;
            Some((name.to_owned(), seconds.parse().ok()?))
        })
        .collect()
}

fn write_index(dir: &Path, index: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let text: String = index
        .iter()
        .map(|(name, seconds)| format!("{name} {seconds}\n"))
        .collect();
    // Written beside and renamed over, so that a reader never sees half of it.
    let tmp = dir.join(format!("{LAST_USED_FILE}.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(LAST_USED_FILE))
}

/// Records that the cached model file `path` (in `dir`) was used now. Failures are ignored:
/// the order of eviction is a hint.
pub fn mark_used(dir: &Path, path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut index = read_index(dir);
    index.insert(name.to_owned(), now);
    let _ = write_index(dir, &index);
}

/// The known models in the cache folder `dir`, least recently used first (never used first).
pub fn cached_models(dir: &Path) -> Vec<CachedModel> {
    let index = read_index(dir);
    let mut cached: Vec<CachedModel> = KNOWN_MODELS
        .iter()
        .filter_map(|model| {
            let path = cached_in(dir, model)?;
            let bytes = std::fs::metadata(&path).ok()?.len();
            let last_used = index
                .get(&model.file_name())
                .map(|s| UNIX_EPOCH + Duration::from_secs(*s));
            Some(CachedModel {
                model,
                path,
                bytes,
                last_used,
            })
        })
        .collect();
    cached.sort_by_key(|c| c.last_used);
    cached
}

/// Deletes cached models, least recently used first, until those left hold at most
/// `max_bytes`; the files in `keep` (the models in use) are never deleted. Returns what it
/// deleted.
pub fn evict(dir: &Path, max_bytes: u64, keep: &[PathBuf]) -> std::io::Result<Vec<CachedModel>> {
    let cached = cached_models(dir);
    let mut total: u64 = cached.iter().map(|c| c.bytes).sum();
    let mut deleted = Vec::new();
    for c in cached {
        if total <= max_bytes {
            break;
        }
        if keep.iter().any(|k| k == &c.path) {
            continue;
        }
        std::fs::remove_file(&c.path)?;
        total -= c.bytes;
        deleted.push(c);
    }
    if !deleted.is_empty() {
        let mut index = read_index(dir);
        for c in &deleted {
            index.remove(&c.model.file_name());
        }
        write_index(dir, &index)?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find;

    /// A cached model file of the right size (sparse: no disk is written).
    fn fake(dir: &Path, name: &str) -> PathBuf {
        let model = find(name).unwrap();
        let path = dir.join(model.file_name());
        std::fs::File::create(&path)
            .unwrap()
            .set_len(model.size)
            .unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_go_first_and_models_in_use_stay() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = fake(dir.path(), "tiny.en");
        let base = fake(dir.path(), "base.en");
        let small = fake(dir.path(), "small.en");
        mark_used(dir.path(), &base);
        std::thread::sleep(Duration::from_millis(1100));
        mark_used(dir.path(), &small);
        let order: Vec<&str> = cached_models(dir.path())
            .iter()
            .map(|c| c.model.name)
            .collect();
        assert_eq!(order, ["tiny.en", "base.en", "small.en"]);
        // Room for base.en and small.en: tiny.en, the least recently used, goes.
        let two = find("base.en").unwrap().size + find("small.en").unwrap().size;
        let deleted = evict(dir.path(), two, &[]).unwrap();
        let names: Vec<&str> = deleted.iter().map(|c| c.model.name).collect();
        assert_eq!(names, ["tiny.en"]);
        assert!(!tiny.exists() && base.exists() && small.exists());
        // Room for one: base.en is in use, so small.en goes although used later.
        let one = find("small.en").unwrap().size;
        let deleted = evict(dir.path(), one, std::slice::from_ref(&base)).unwrap();
        assert_eq!(deleted[0].model.name, "small.en");
        assert!(base.exists() && !small.exists());
        // Not in use any more, base.en goes too; the index forgets what was deleted.
        let deleted = evict(dir.path(), 1, &[]).unwrap();
        assert_eq!(deleted[0].model.name, "base.en");
        let index = std::fs::read_to_string(dir.path().join(LAST_USED_FILE)).unwrap();
        assert!(index.trim().is_empty(), "{index}");
    }
}
