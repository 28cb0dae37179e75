//! `runeflow pull <dir>`: writes the workspace (or one folder of it) to a
//! local folder, byte for byte. Local files the workspace lacks are left
//! alone.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;

use super::client::ApiClient;
use super::workspace_folder::workspace_folder;
use crate::cli::PullArgs;

/// Downloads in flight at once.
const PARALLEL: usize = 8;

pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let prefix = workspace_folder(&args.prefix)?;
    let files = client.list_files(&prefix).await?;
    let written = futures::stream::iter(files.iter().map(|file| {
        let client = &client;
        let dir = &args.dir;
        let prefix = &prefix;
        async move {
            let rel = file
                .path
                .strip_prefix(prefix.as_str())
                .unwrap_or(&file.path);
            let target = local_path(dir, rel)?;
            let bytes = client.read_file(&file.path).await?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            tokio::fs::write(&target, bytes)
                .await
                .with_context(|| format!("writing {}", target.display()))?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .collect::<Vec<_>>()
    .await;
    for result in written {
        result?;
    }
    println!("{} files written to {}", files.len(), args.dir.display());
    Ok(())
}

/// `dir/rel`, refusing anything but plain relative segments (the API never
/// lists others; this keeps a hostile server from writing outside `dir`).
fn local_path(dir: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let rel_path = Path::new(rel);
    let plain = rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    anyhow::ensure!(
        plain && !rel.is_empty(),
        "the API listed a path that is not a plain relative path: {rel:?}"
    );
    Ok(dir.join(rel_path))
}
