//! A local folder as an import source: a recursive walk that yields every
//! regular file with its size from the metadata (so an oversized file is
//! refused before it is opened), and a bounded read.
//!
//! Skipped without a line: `__pycache__` and `.git` folders and `.pyc` files
//! (see [`super::source`]). Symbolic links to files are followed; symbolic
//! links to folders are not (no loops, nothing outside the folder by
//! surprise) and are reported as refused, as are sockets, FIFOs and devices
//! (reading a FIFO would block) and folders that cannot be read.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;

use super::source::{Content, Entry, Location, skipped_file, skipped_folder};

/// An existing folder.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    /// Checks that `path` is a folder we can read.
    pub fn open(path: &Path) -> anyhow::Result<Folder> {
        let shown = path.display();
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("folder '{shown}' does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read folder '{shown}'")),
        };
        if !meta.is_dir() {
            bail!("'{shown}' is not a folder (give a folder or s3://bucket/prefix)");
        }
        Ok(Folder {
            root: path.to_path_buf(),
        })
    }

    /// Walks the folder (blocking; run it on the blocking pool).
    pub fn list(&self) -> anyhow::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let mut pending: Vec<(PathBuf, Vec<u8>)> = vec![(self.root.clone(), Vec::new())];
        while let Some((dir, relative)) = pending.pop() {
            let listing = match std::fs::read_dir(&dir) {
                Ok(listing) => listing,
                // The root was checked in `open`; failing on it now is fatal.
                Err(e) if relative.is_empty() => {
                    return Err(e)
                        .with_context(|| format!("cannot read folder '{}'", dir.display()));
                }
                Err(e) => {
                    entries.push(unreadable(relative, format!("cannot read folder: {e}")));
                    continue;
                }
            };
            for item in listing {
                let item =
                    item.with_context(|| format!("cannot read folder '{}'", dir.display()))?;
                let name = item.file_name();
                let name = name.as_bytes();
                let child = join(&relative, name);
                let kind = match item.file_type() {
                    Ok(kind) => kind,
                    Err(e) => {
                        entries.push(unreadable(child, format!("cannot read: {e}")));
                        continue;
                    }
                };
                if kind.is_dir() {
                    if !skipped_folder(name) {
                        pending.push((item.path(), child));
                    }
                    continue;
                }
                if skipped_file(name) {
                    continue;
                }
                // `metadata` follows a symbolic link; `file_type` does not.
                match std::fs::metadata(item.path()) {
                    Ok(meta) if meta.is_file() => entries.push(Entry {
                        relative: child,
                        size: meta.len(),
                        location: Location::File(item.path()),
                    }),
                    Ok(meta) if meta.is_dir() => entries.push(unreadable(
                        child,
                        "symbolic link to a folder (not followed)".to_owned(),
                    )),
                    Ok(_) => entries.push(unreadable(
                        child,
                        "not a regular file (socket, FIFO or device)".to_owned(),
                    )),
                    Err(e) if kind.is_symlink() => {
                        entries.push(unreadable(child, format!("broken symbolic link: {e}")))
                    }
                    Err(e) => entries.push(unreadable(child, format!("cannot read: {e}"))),
                }
            }
        }
        Ok(entries)
    }
}

/// Reads at most `limit + 1` bytes of a file: enough to know it is too large
/// even when it grew since it was listed.
pub async fn read(path: &Path, limit: usize) -> Content {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) => return Content::Unreadable(format!("cannot read: {e}")),
    };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    if let Err(e) = file.take(cap).read_to_end(&mut bytes).await {
        return Content::Unreadable(format!("cannot read: {e}"));
    }
    if bytes.len() > limit {
        let size = tokio::fs::metadata(path)
            .await
            .map(|m| m.len())
            .unwrap_or(bytes.len() as u64);
        return Content::TooLarge { size };
    }
    Content::Bytes(bytes)
}

fn join(relative: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(relative.len() + 1 + name.len());
    path.extend_from_slice(relative);
    if !relative.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

fn unreadable(relative: Vec<u8>, reason: String) -> Entry {
    Entry {
        relative,
        size: 0,
        location: Location::Unreadable(reason),
    }
}
