//! Where an import reads from, behind one interface: a local folder or an
//! S3 prefix both yield a list of [`Entry`]s (relative path and size, known
//! before any content is read, so an oversized file is refused without being
//! read) and read one entry's bytes with the size limit enforced while
//! reading. The skip rules (`__pycache__` and `.git` folders, `.pyc` files)
//! live here so both sources apply the same ones.

use anyhow::Context;

use super::{folder, s3};

/// A file the source offers, in no particular order.
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the folder / S3 prefix, `/`-separated. Raw bytes:
    /// a file name on disk need not be UTF-8 (such a path is refused later,
    /// with the workspace's own path rule).
    pub relative: Vec<u8>,
    /// Size as listed (file metadata / S3 listing).
    pub size: u64,
    pub location: Location,
}

/// How to read an entry, or why it cannot be.
#[derive(Debug)]
pub enum Location {
    File(std::path::PathBuf),
    Object(object_store::path::Path),
    /// Listed but not importable (a symlinked folder, a socket, an unreadable
    /// folder...); the sentence is the reason reported.
    Unreadable(String),
}

/// An entry's content, or why it was not read to the end.
#[derive(Debug)]
pub enum Content {
    Bytes(Vec<u8>),
    /// More than the limit; `size` is the size seen (at least limit + 1).
    TooLarge {
        size: u64,
    },
    /// Vanished or unreadable since the listing; the sentence says why.
    Unreadable(String),
}

/// A folder on this machine or `s3://bucket/prefix`.
pub enum Source {
    Folder(folder::Folder),
    S3(s3::Bucket),
}

impl Source {
    /// Parses SOURCE; a folder must exist. Nothing is listed yet.
    pub fn open(source: &str, s3_endpoint: Option<&str>) -> anyhow::Result<Source> {
        if s3::is_s3_url(source) {
            return Ok(Source::S3(s3::Bucket::open(source, s3_endpoint)?));
        }
        Ok(Source::Folder(folder::Folder::open(std::path::Path::new(
            source,
        ))?))
    }

    /// Every importable entry (skipped ones already left out).
    pub async fn list(&self) -> anyhow::Result<Vec<Entry>> {
        match self {
            Source::Folder(folder) => {
                let folder = folder.clone();
                tokio::task::spawn_blocking(move || folder.list())
                    .await
                    .context("listing the folder panicked")?
            }
            Source::S3(bucket) => bucket.list().await,
        }
    }

    /// Reads one entry, reading at most `limit + 1` bytes.
    pub async fn read(&self, entry: &Entry, limit: usize) -> anyhow::Result<Content> {
        match &entry.location {
            Location::Unreadable(reason) => Ok(Content::Unreadable(reason.clone())),
            Location::File(path) => Ok(folder::read(path, limit).await),
            Location::Object(key) => match self {
                Source::S3(bucket) => bucket.read(key, limit).await,
                Source::Folder(_) => Ok(Content::Unreadable(
                    "an S3 object listed by a folder source".to_owned(),
                )),
            },
        }
    }
}

/// A folder that is never imported: Python's bytecode cache and git's data.
pub fn skipped_folder(name: &[u8]) -> bool {
    name == b"__pycache__" || name == b".git"
}

/// A file that is never imported: compiled bytecode, and the `.git` file a
/// submodule or worktree has instead of a folder.
pub fn skipped_file(name: &[u8]) -> bool {
    name.ends_with(b".pyc") || name == b".git"
}

/// True when a `/`-separated relative path passes through a skipped folder
/// or names a skipped file (the rules for S3 keys).
pub fn skipped_path(relative: &[u8]) -> bool {
    let mut segments = relative.split(|b| *b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (last && skipped_file(segment)) || (!last && skipped_folder(segment)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::skipped_path;

    #[test]
    fn skip_rules() {
        assert!(skipped_path(b"pkg/__pycache__/mod.cpython-312.pyc"));
        assert!(skipped_path(b"__pycache__/notes.txt"));
        assert!(skipped_path(b"a/b/c.pyc"));
        assert!(skipped_path(b".git/config"));
        assert!(skipped_path(b"sub/.git"));
        assert!(!skipped_path(b"pkg/mod.py"));
        assert!(!skipped_path(b"pkg/__pycache__.py"));
        assert!(!skipped_path(b".gitignore"));
        assert!(!skipped_path(b"data.pyc.txt"));
    }
}
