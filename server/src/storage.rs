//! The storage folder: uploads go in, and `audio_path` may only name what is inside.

use std::io;
use std::path::{Component, Path, PathBuf};

use rand::TryRngCore;

/// The storage folder, created at start and canonicalized (symlinks resolved), so that every
/// later check compares real paths.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    min_size: u64,
}

/// Why a path or an upload was refused; the message is meant for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageError {
    /// The name is not a plain relative path inside storage.
    Forbidden(String),
    /// No such file.
    NotFound(String),
    /// Smaller than `storage.min_file_size_bytes`.
    TooSmall {
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// The file system failed.
    Io(String),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Forbidden(why) => write!(f, "audio_path refused: {why}"),
            StorageError::NotFound(name) => write!(f, "no file {name:?} in storage"),
            StorageError::TooSmall { size, min } => write!(
                f,
                "the audio is {size} bytes, less than the minimum of {min} bytes"
            ),
            StorageError::Io(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl Storage {
    /// Creates the folder if needed.
    pub fn open(dir: &Path, min_size: u64) -> io::Result<Storage> {
        std::fs::create_dir_all(dir)?;
        Ok(Storage {
            root: dir.canonicalize()?,
            min_size,
        })
    }

    /// The canonical folder.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// Stores an upload under a fresh random id (32 hex digits) and returns the id. The file is
    /// written under a temporary name and renamed, so a reader never sees half of it.
    pub fn store(&self, bytes: &[u8], extension: Option<&str>) -> Result<String, StorageError> {
        self.check_size(bytes.len() as u64)?;
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
        let io = |e: io::Error| StorageError::Io(e.to_string());
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, self.root.join(&id)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(id)
    }

    /// Resolves a client's `audio_path` (an upload id or a relative name) to a regular file
    /// inside storage. Refuses absolute paths, `..`, anything that is not a plain name, and
    /// symbolic links (anywhere on the way) that lead outside.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, StorageError> {
        if name.is_empty() {
            return Err(StorageError::Forbidden("it is empty".into()));
        }
        if name.contains('\0') || name.contains('\\') {
            return Err(StorageError::Forbidden(
                "it contains a NUL or a backslash".into(),
            ));
        }
        let relative = Path::new(name);
        for component in relative.components() {
            match component {
                Component::Normal(_) | Component::CurDir => {}
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
        let real = match joined.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(StorageError::Io(e.to_string())),
        };
        if !real.starts_with(&self.root) {
            return Err(StorageError::Forbidden(
                "it leads outside the storage folder".into(),
            ));
        }
        let meta = std::fs::metadata(&real).map_err(|e| StorageError::Io(e.to_string()))?;
        if !meta.is_file() {
            return Err(StorageError::Forbidden("it is not a regular file".into()));
        }
        self.check_size(meta.len())?;
        Ok(real)
    }
}

/// File extensions kept on uploads: short, alphanumeric.
pub fn is_safe_extension(ext: &str) -> bool {
    (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_storage_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("store"), 4).unwrap();
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
