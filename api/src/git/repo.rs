//! git2 work for one sync request, on a throwaway bare repository: fetch
//! the branch, read trees, commit the workspace on top, push. Blocking
//! (libgit2), so callers run it on the blocking pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use git2::{
    Index, IndexEntry, IndexTime, ObjectType, Oid, Repository, Signature, TreeWalkMode,
    TreeWalkResult,
};

use super::GitError;
use super::remote::Remote;
use super::transfer::{Credentials, Transfer};

/// A bare repository in a fresh temporary folder, removed on drop.
pub struct Scratch {
    repo: Repository,
    dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Scratch {
    pub fn new() -> Result<Self, GitError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "runeflow-git-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = Repository::init_bare(&dir).map_err(GitError::local)?;
        Ok(Scratch { repo, dir })
    }

    /// Fetches `branch` from `remote`; its head commit, or None when the
    /// remote has no such branch (yet). Within `transfer`'s limits.
    pub fn fetch(
        &self,
        remote: &Remote,
        branch: &str,
        credentials: &Credentials,
        transfer: &Transfer,
    ) -> Result<Option<Oid>, GitError> {
        let mut options = transfer.fetch_options(remote, credentials);
        let mut remote = self
            .repo
            .remote_anonymous(remote.url())
            .map_err(GitError::remote)?;
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(GitError::remote)?;
        match self
            .repo
            .find_reference(&format!("refs/remotes/origin/{branch}"))
        {
            Ok(reference) => Ok(Some(
                reference.peel_to_commit().map_err(GitError::remote)?.id(),
            )),
            Err(err) if err.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(err) => Err(GitError::remote(err)),
        }
    }

    /// True when the fetched history holds `commit`.
    pub fn has_commit(&self, commit: Oid) -> bool {
        self.repo.find_commit(commit).is_ok()
    }

    /// path → blob id of every file in `commit`'s tree.
    pub fn files_at(&self, commit: Oid) -> Result<BTreeMap<String, Oid>, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(GitError::local)?;
        let mut files = BTreeMap::new();
        tree.walk(TreeWalkMode::PreOrder, |folder, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Some(name) = entry.name()
            {
                files.insert(format!("{folder}{name}"), entry.id());
            }
            TreeWalkResult::Ok
        })
        .map_err(GitError::local)?;
        Ok(files)
    }

    /// The bytes of a blob.
    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, GitError> {
        Ok(self
            .repo
            .find_blob(id)
            .map_err(GitError::local)?
            .content()
            .to_vec())
    }

    /// Commits exactly `files` on top of `parent` as `refs/heads/<branch>`;
    /// None when the tree would equal the parent's (nothing to push).
    pub fn commit(
        &self,
        branch: &str,
        files: &[(String, Vec<u8>)],
        parent: Option<Oid>,
        author: &Signature,
        message: &str,
    ) -> Result<Option<Oid>, GitError> {
        let mut index = Index::new().map_err(GitError::local)?;
        for (path, content) in files {
            let id = self.repo.blob(content).map_err(GitError::local)?;
            index
                .add(&IndexEntry {
                    ctime: IndexTime::new(0, 0),
                    mtime: IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: 0o100_644,
                    uid: 0,
                    gid: 0,
                    file_size: u32::try_from(content.len()).unwrap_or(u32::MAX),
                    id,
                    flags: u16::try_from(path.len().min(0xfff)).unwrap_or(0xfff),
                    flags_extended: 0,
                    path: path.as_bytes().to_vec(),
                })
                .map_err(|e| GitError::Refused(format!("'{path}' cannot be stored in git: {e}")))?;
        }
        let tree_id = index.write_tree_to(&self.repo).map_err(GitError::local)?;
        let tree = self.repo.find_tree(tree_id).map_err(GitError::local)?;
        let parent = match parent {
            Some(id) => Some(self.repo.find_commit(id).map_err(GitError::local)?),
            None => None,
        };
        if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
            return Ok(None);
        }
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let id = self
            .repo
            .commit(
                Some(&format!("refs/heads/{branch}")),
                author,
                author,
                message,
                &tree,
                &parents,
            )
            .map_err(GitError::local)?;
        Ok(Some(id))
    }

    /// Pushes the local `branch` to `remote` (fast-forward only: a remote
    /// that moved in the meantime refuses it). Within `transfer`'s limits.
    pub fn push(
        &self,
        remote: &Remote,
        branch: &str,
        credentials: &Credentials,
        transfer: &Transfer,
    ) -> Result<(), GitError> {
        let mut rejected: Option<String> = None;
        {
            let mut options = transfer.push_options(remote, credentials, |callbacks| {
                callbacks.push_update_reference(|reference, status| {
                    if let Some(status) = status {
                        rejected = Some(format!("{reference}: {status}"));
                    }
                    Ok(())
                });
            });
            let mut remote = self
                .repo
                .remote_anonymous(remote.url())
                .map_err(GitError::remote)?;
            let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
            remote
                .push(&[refspec.as_str()], Some(&mut options))
                .map_err(GitError::remote)?;
        }
        match rejected {
            Some(why) => Err(GitError::Moved(format!(
                "the remote refused the push ({why})"
            ))),
            None => Ok(()),
        }
    }
}

/// The git blob id `content` would have.
pub fn blob_id(content: &[u8]) -> Result<Oid, GitError> {
    Oid::hash_object(ObjectType::Blob, content).map_err(GitError::local)
}
