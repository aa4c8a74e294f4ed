//! The storage folder: uploads go in, and `audio_path` may only name what is inside.
//!
//! Uploads are bounded: together they may hold at most `storage.max_bytes`, and each is kept
//! for `storage.retention_seconds`. An upload that does not fit first evicts expired uploads,
//! oldest first, and is refused with 507 when that is not enough; a sweep also deletes expired
//! uploads in the background. Files an operator placed in the folder (any name that is not an
//! upload id) are never counted or evicted.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::TryRngCore;

use crate::config::StorageConfig;

/// Longest `audio_path` accepted, in bytes (Linux's PATH_MAX).
pub const MAX_NAME_BYTES: usize = 4096;
/// Longest single path component, in bytes (Linux's NAME_MAX).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// The storage folder, created at start and canonicalized (symlinks resolved), so that every
/// later check compares real paths. Clones share the uploads' accounting.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    min_size: u64,
    max_bytes: u64,
    retention: Duration,
    book: Arc<Mutex<Book>>,
}

/// The uploads held, by id.
#[derive(Debug, Default)]
struct Book {
    uploads: BTreeMap<String, Upload>,
    /// Bytes of the uploads held plus those being written.
    bytes: u64,
    evicted: u64,
    evicted_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Upload {
    size: u64,
    stored: SystemTime,
}

/// What storage holds, for `/health` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageUsage {
    /// Uploads held.
    pub uploads: u64,
    /// Their bytes (and those of uploads being written).
    pub bytes: u64,
    /// `storage.max_bytes`.
    pub max_bytes: u64,
    /// `storage.retention_seconds`.
    pub retention: Duration,
    /// Uploads deleted because they expired.
    pub evicted: u64,
    /// Their bytes.
    pub evicted_bytes: u64,
}

/// Why a path or an upload was refused; the message is meant for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageError {
    /// The name is not a plain relative path inside storage (403).
    Forbidden(String),
    /// The name cannot name a file: too long, a control character, not an upload id (400).
    BadName(String),
    /// No such file (404).
    NotFound(String),
    /// Smaller than `storage.min_file_size_bytes` (400).
    TooSmall {
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// The uploads' quota is full even after evicting the expired ones (507).
    QuotaFull {
        /// The upload's size.
        size: u64,
        /// Bytes held by uploads.
        held: u64,
        /// `storage.max_bytes`.
        max: u64,
    },
    /// The disk is full (507); nothing was kept.
    DiskFull(String),
    /// The file system failed (500).
    Io(String),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Forbidden(why) => write!(f, "audio_path refused: {why}"),
            StorageError::BadName(why) => write!(f, "bad file name: {why}"),
            StorageError::NotFound(name) => write!(f, "no file {name:?} in storage"),
            StorageError::TooSmall { size, min } => write!(
                f,
                "the audio is {size} bytes, less than the minimum of {min} bytes"
            ),
            StorageError::QuotaFull { size, held, max } => write!(
                f,
                "storage is full: uploads hold {held} of {max} bytes and this one needs {size}; \
                 delete uploads (DELETE /api/upload/ID) or wait until they expire"
            ),
            StorageError::DiskFull(e) => {
                write!(f, "the server's disk is full; nothing was stored ({e})")
            }
            StorageError::Io(e) => write!(f, "storage error: {e}"),
        }
    }
}

/// Maps a file-system error on a client's name: what a name can cause is the client's.
fn name_error(name: &str, e: io::Error) -> StorageError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            StorageError::NotFound(shorten(name))
        }
        io::ErrorKind::InvalidFilename | io::ErrorKind::InvalidInput => {
            StorageError::BadName(format!("the file system refuses it ({e})"))
        }
        io::ErrorKind::PermissionDenied => {
            StorageError::Forbidden(format!("it cannot be opened ({e})"))
        }
        _ => StorageError::Io(e.to_string()),
    }
}

/// A client's name in a message, at most 100 characters of it.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &name[..i]),
        None => name.to_owned(),
    }
}

/// Whether a write failed because the disk is full.
fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Whether `name` is an upload id: 32 lowercase hex digits, maybe a safe extension.
pub fn is_upload_id(name: &str) -> bool {
    let (hex, ext) = match name.split_once('.') {
        Some((hex, ext)) => (hex, Some(ext)),
        None => (name, None),
    };
    hex.len() == 32
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && ext.is_none_or(|e| is_safe_extension(e) && e.bytes().all(|b| !b.is_ascii_uppercase()))
}

impl Storage {
    /// Creates the folder if needed, deletes half-written uploads a previous run left, and
    /// counts the uploads it holds (their age from their modification time).
    pub fn open(config: &StorageConfig) -> io::Result<Storage> {
        std::fs::create_dir_all(&config.dir)?;
        let root = config.dir.canonicalize()?;
        let mut book = Book::default();
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            if name.starts_with(".upload-") && name.ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            } else if is_upload_id(&name) {
                book.bytes += meta.len();
                let stored = meta.modified().unwrap_or_else(|_| SystemTime::now());
                book.uploads.insert(
                    name,
                    Upload {
                        size: meta.len(),
                        stored,
                    },
                );
            }
        }
        Ok(Storage {
            root,
            min_size: config.min_file_size_bytes,
            max_bytes: config.max_bytes,
            retention: Duration::from_secs_f64(config.retention_seconds),
            book: Arc::new(Mutex::new(book)),
        })
    }

    /// The canonical folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // The book stays consistent across a panic (every update is one step), so a poisoned
        // lock is taken over.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks an upload's size.
    pub fn check_size(&self, size: u64) -> Result<(), StorageError> {
        if size < self.min_size {
            return Err(StorageError::TooSmall {
                size,
                min: self.min_size,
            });
        }
        Ok(())
    }

    /// Deletes expired uploads, oldest first, until `needed` more bytes fit (all of them
    /// with `needed == None`).
    fn evict(&self, book: &mut Book, now: SystemTime, needed: Option<u64>) {
        let mut expired: Vec<(SystemTime, String)> = book
            .uploads
            .iter()
            .filter(|(_, u)| now.duration_since(u.stored).unwrap_or_default() >= self.retention)
            .map(|(id, u)| (u.stored, id.clone()))
            .collect();
        expired.sort();
        for (_, id) in expired {
            if needed.is_some_and(|n| book.bytes.saturating_add(n) <= self.max_bytes) {
                break;
            }
            match std::fs::remove_file(self.root.join(&id)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    log::warn!("cannot delete the expired upload {id}: {e}");
                    continue;
                }
            }
            if let Some(u) = book.uploads.remove(&id) {
                book.bytes -= u.size;
                book.evicted += 1;
                book.evicted_bytes += u.size;
            }
        }
    }

    /// Deletes every expired upload (the server's periodic sweep).
    pub fn sweep(&self) {
        let mut book = self.book();
        self.evict(&mut book, SystemTime::now(), None);
    }

    /// What storage holds.
    pub fn usage(&self) -> StorageUsage {
        let book = self.book();
        StorageUsage {
            uploads: book.uploads.len() as u64,
            bytes: book.bytes,
            max_bytes: self.max_bytes,
            retention: self.retention,
            evicted: book.evicted,
            evicted_bytes: book.evicted_bytes,
        }
    }

    /// Stores an upload under a fresh random id (32 hex digits) and returns the id. The file is
    /// written under a temporary name and renamed, so a reader never sees half of it; when the
    /// write fails (a full disk: [`StorageError::DiskFull`]) nothing is left behind.
    pub fn store(&self, bytes: &[u8], extension: Option<&str>) -> Result<String, StorageError> {
        self.store_with(bytes, extension, |file, bytes| file.write_all(bytes))
    }

    /// [`store`](Self::store) with the write itself given, so that tests can make it fail.
    fn store_with(
        &self,
        bytes: &[u8],
        extension: Option<&str>,
        write: impl FnOnce(&mut std::fs::File, &[u8]) -> io::Result<()>,
    ) -> Result<String, StorageError> {
        let size = bytes.len() as u64;
        self.check_size(size)?;
        {
            let mut book = self.book();
            if book.bytes.saturating_add(size) > self.max_bytes {
                self.evict(&mut book, SystemTime::now(), Some(size));
            }
            if book.bytes.saturating_add(size) > self.max_bytes {
                return Err(StorageError::QuotaFull {
                    size,
                    held: book.bytes,
                    max: self.max_bytes,
                });
            }
            book.bytes += size; // reserved while it is written
        }
        let result = self.write_new(bytes, extension, write);
        let mut book = self.book();
        match &result {
            Ok(id) => {
                book.uploads.insert(
                    id.clone(),
                    Upload {
                        size,
                        stored: SystemTime::now(),
                    },
                );
            }
            Err(_) => book.bytes -= size,
        }
        result
    }

    fn write_new(
        &self,
        bytes: &[u8],
        extension: Option<&str>,
        write: impl FnOnce(&mut std::fs::File, &[u8]) -> io::Result<()>,
    ) -> Result<String, StorageError> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut raw)
            .map_err(|e| StorageError::Io(e.to_string()))?;
        let mut id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(ext) = extension.filter(|e| is_safe_extension(e)) {
            id.push('.');
            id.push_str(&ext.to_ascii_lowercase());
        }
        let tmp = self.root.join(format!(".upload-{id}.part"));
        let fail = |e: io::Error| {
            let _ = std::fs::remove_file(&tmp);
            if is_disk_full(&e) {
                StorageError::DiskFull(e.to_string())
            } else {
                StorageError::Io(e.to_string())
            }
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(fail)?;
        write(&mut file, bytes)
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, self.root.join(&id)).map_err(fail)?;
        Ok(id)
    }

    /// Deletes an upload by its id.
    pub fn delete(&self, id: &str) -> Result<u64, StorageError> {
        if !is_upload_id(id) {
            return Err(StorageError::BadName(format!(
                "{:?} is not an upload id (32 hex digits, maybe an extension)",
                shorten(id)
            )));
        }
        let mut book = self.book();
        match std::fs::remove_file(self.root.join(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // gone from disk (or never there): forget it, and say so
                if let Some(u) = book.uploads.remove(id) {
                    book.bytes -= u.size;
                }
                return Err(StorageError::NotFound(id.to_owned()));
            }
            Err(e) => return Err(StorageError::Io(e.to_string())),
        }
        let size = book.uploads.remove(id).map_or(0, |u| u.size);
        book.bytes -= size;
        Ok(size)
    }

    /// Resolves a client's `audio_path` (an upload id or a relative name) to a regular file
    /// inside storage. Refuses absolute paths, `..`, anything that is not a plain name, and
    /// symbolic links (anywhere on the way) that lead outside; names no file system could hold
    /// (too long, control characters) are a [`StorageError::BadName`].
    pub fn resolve(&self, name: &str) -> Result<PathBuf, StorageError> {
        if name.is_empty() {
            return Err(StorageError::Forbidden("it is empty".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(StorageError::BadName(format!(
                "it is {} bytes long; at most {MAX_NAME_BYTES}",
                name.len()
            )));
        }
        if name.contains('\0') || name.contains('\\') {
            return Err(StorageError::Forbidden(
                "it contains a NUL or a backslash".into(),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(StorageError::BadName(
                "it contains a control character".into(),
            ));
        }
        let relative = Path::new(name);
        for component in relative.components() {
            match component {
                Component::Normal(part) => {
                    if part.len() > MAX_COMPONENT_BYTES {
                        return Err(StorageError::BadName(format!(
                            "a part of it is {} bytes long; at most {MAX_COMPONENT_BYTES}",
                            part.len()
                        )));
                    }
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(StorageError::Forbidden("it contains `..`".into()))
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(StorageError::Forbidden(
                        "it must be relative to the storage folder".into(),
                    ))
                }
            }
        }
        let joined = self.root.join(relative);
        let real = joined.canonicalize().map_err(|e| name_error(name, e))?;
        if !real.starts_with(&self.root) {
            return Err(StorageError::Forbidden(
                "it leads outside the storage folder".into(),
            ));
        }
        let meta = std::fs::metadata(&real).map_err(|e| name_error(name, e))?;
        if !meta.is_file() {
            return Err(StorageError::Forbidden("it is not a regular file".into()));
        }
        self.check_size(meta.len())?;
        Ok(real)
    }

    /// Reads a file [`resolve`](Self::resolve) returned; one that vanished since is not found.
    pub fn read(&self, name: &str, path: &Path) -> Result<Vec<u8>, StorageError> {
        std::fs::read(path).map_err(|e| name_error(name, e))
    }
}

/// File extensions kept on uploads: short, alphanumeric.
pub fn is_safe_extension(ext: &str) -> bool {
    (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_bytes: u64, retention_seconds: f64) -> StorageConfig {
        StorageConfig {
            dir: dir.to_path_buf(),
            min_file_size_bytes: 4,
            max_bytes,
            retention_seconds,
        }
    }

    /// Files in the folder, hidden ones included.
    fn files(storage: &Storage) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(storage.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_full_quota_evicts_expired_uploads_oldest_first_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        // Two seconds of retention: long enough that the first uploads cannot expire before
        // the quota is checked, even on a loaded machine (0.3 s did, once, in CI).
        let storage = Storage::open(&config(dir.path(), 100, 2.0)).unwrap();
        std::fs::write(storage.root().join("operator.wav"), [7u8; 500]).unwrap();
        let first = storage.store(&[1u8; 40], Some("wav")).unwrap();
        let second = storage.store(&[2u8; 40], None).unwrap();
        let full = storage.store(&[3u8; 40], None).unwrap_err();
        assert_eq!(
            full,
            StorageError::QuotaFull {
                size: 40,
                held: 80,
                max: 100
            }
        );
        assert!(full.to_string().contains("DELETE /api/upload/ID"), "{full}");
        let usage = storage.usage();
        assert_eq!((usage.uploads, usage.bytes, usage.evicted), (2, 80, 0));

        std::thread::sleep(Duration::from_millis(2100));
        // both expired; one eviction (the oldest) makes room
        let third = storage.store(&[3u8; 40], None).unwrap();
        assert!(!storage.root().join(&first).exists());
        assert!(storage.root().join(&second).exists());
        let usage = storage.usage();
        assert_eq!((usage.uploads, usage.bytes, usage.evicted), (2, 80, 1));
        assert_eq!(usage.evicted_bytes, 40);

        std::thread::sleep(Duration::from_millis(2100));
        storage.sweep();
        assert_eq!(storage.usage().uploads, 0);
        assert_eq!(storage.usage().bytes, 0);
        assert!(!storage.root().join(&third).exists());
        // the operator's file is neither counted nor evicted
        assert_eq!(files(&storage), ["operator.wav"]);
        assert!(storage.resolve("operator.wav").is_ok());
    }

    #[test]
    fn a_failed_write_keeps_nothing_and_gives_the_reservation_back() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&config(dir.path(), 100, 3600.0)).unwrap();
        let err = storage
            .store_with(&[1u8; 60], None, |file, bytes| {
                file.write_all(&bytes[..30])?;
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device",
                ))
            })
            .unwrap_err();
        assert!(matches!(err, StorageError::DiskFull(_)), "{err:?}");
        assert!(err.to_string().contains("disk is full"), "{err}");
        assert!(files(&storage).is_empty(), "{:?}", files(&storage));
        assert_eq!(storage.usage().bytes, 0);
        // other failures are the server's, and leave nothing either
        let err = storage
            .store_with(&[1u8; 60], None, |_, _| Err(io::Error::other("broken")))
            .unwrap_err();
        assert!(matches!(err, StorageError::Io(_)), "{err:?}");
        assert!(files(&storage).is_empty());
        assert!(storage.store(&[1u8; 60], None).is_ok());
    }

    #[test]
    fn uploads_are_deleted_by_id_and_counted_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&config(dir.path(), 1000, 3600.0)).unwrap();
        let a = storage.store(&[1u8; 10], Some("mp3")).unwrap();
        let b = storage.store(&[2u8; 20], None).unwrap();
        std::fs::write(storage.root().join(".upload-x.part"), b"half").unwrap();
        assert!(is_upload_id(&a) && is_upload_id(&b));

        let reopened = Storage::open(&config(dir.path(), 1000, 3600.0)).unwrap();
        assert_eq!((reopened.usage().uploads, reopened.usage().bytes), (2, 30));
        assert!(!reopened.root().join(".upload-x.part").exists());

        assert_eq!(reopened.delete(&a), Ok(10));
        assert_eq!(reopened.delete(&a), Err(StorageError::NotFound(a.clone())));
        assert_eq!((reopened.usage().uploads, reopened.usage().bytes), (1, 20));
        for bad in [
            "x",
            "../etc/passwd",
            "operator.wav",
            &"a".repeat(5000),
            "ABCDEF0123456789ABCDEF0123456789",
        ] {
            assert!(
                matches!(reopened.delete(bad), Err(StorageError::BadName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_no_file_system_can_hold_are_bad_requests_not_server_errors() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&config(dir.path(), 1000, 3600.0)).unwrap();
        std::fs::write(storage.root().join("a.wav"), b"12345").unwrap();
        let long = "a".repeat(5000);
        let long_part = format!("{}.wav", "b".repeat(300));
        let deep = format!("{}/x.wav", ["c"; 3000].join("/"));
        for name in [
            long.as_str(),
            &long_part,
            &deep,
            "a\twav",
            "a\n.wav",
            "a\u{7f}.wav",
        ] {
            let err = storage.resolve(name).unwrap_err();
            assert!(matches!(err, StorageError::BadName(_)), "{name:?}: {err:?}");
            assert!(err.to_string().len() < 200, "{err}");
        }
        // a file used as a folder, a missing folder: not found
        for name in ["a.wav/x.wav", "nope/x.wav"] {
            assert!(
                matches!(storage.resolve(name), Err(StorageError::NotFound(_))),
                "{name:?}: {:?}",
                storage.resolve(name)
            );
        }
        assert!(storage.resolve("a.wav").is_ok());
    }

    #[test]
    fn only_files_inside_storage_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&config(&dir.path().join("store"), 1 << 20, 3600.0)).unwrap();
        let id = storage.store(b"RIFF....", Some("wav")).unwrap();
        assert!(id.ends_with(".wav") && id.len() == 36, "{id}");
        assert_eq!(storage.resolve(&id).unwrap(), storage.root().join(&id));
        std::fs::create_dir(storage.root().join("sub")).unwrap();
        std::fs::write(storage.root().join("sub/a.wav"), b"12345").unwrap();
        assert!(storage.resolve("sub/a.wav").is_ok());
        assert!(storage.resolve("./sub/a.wav").is_ok());

        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, b"secret data").unwrap();
        for bad in [
            "../secret.txt",
            "sub/../../secret.txt",
            "/etc/passwd",
            "",
            "sub",
            "a\\b",
        ] {
            assert!(
                matches!(storage.resolve(bad), Err(StorageError::Forbidden(_))),
                "{bad:?}: {:?}",
                storage.resolve(bad)
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, storage.root().join("link.wav")).unwrap();
            std::os::unix::fs::symlink(dir.path(), storage.root().join("up")).unwrap();
            assert!(matches!(
                storage.resolve("link.wav"),
                Err(StorageError::Forbidden(_))
            ));
            assert!(matches!(
                storage.resolve("up/secret.txt"),
                Err(StorageError::Forbidden(_))
            ));
        }
        assert!(matches!(
            storage.resolve("nope.wav"),
            Err(StorageError::NotFound(_))
        ));
        std::fs::write(storage.root().join("tiny"), b"1").unwrap();
        assert!(matches!(
            storage.resolve("tiny"),
            Err(StorageError::TooSmall { .. })
        ));
        assert!(storage.store(b"1", None).is_err());
        assert!(!is_safe_extension("../x") && !is_safe_extension("") && is_safe_extension("mp3"));
    }
}
