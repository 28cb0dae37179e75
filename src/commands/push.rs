//! `runeflow push <dir>`: uploads new and changed files (compared by
//! content hash with the workspace's listing, so an unchanged folder uploads
//! nothing), optionally deletes workspace files the folder no longer has.
//! The folder is walked as `runeflow import` walks one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use runeflow_shared::hash::content_hash;

use super::client::{ApiClient, as_api_error};
use super::import::folder::Folder;
use super::import::source::Location;
use super::workspace_folder::workspace_folder;
use crate::cli::PushArgs;

/// Uploads in flight at once.
const PARALLEL: usize = 8;

/// What happened to one path.
enum Action {
    Created,
    Updated,
    Unchanged,
    Deleted,
    Refused(String),
}

pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let prefix = workspace_folder(&args.prefix)?;
    let (local, mut refused) = local_files(&args.dir).await?;
    let remote: BTreeMap<String, String> = client
        .list_files(&prefix)
        .await?
        .into_iter()
        .map(|f| (f.path, f.content_hash))
        .collect();
    let targets: BTreeSet<String> = local.keys().map(|rel| format!("{prefix}{rel}")).collect();
    let doomed: Vec<String> = if args.delete {
        remote
            .keys()
            .filter(|p| !targets.contains(*p))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let progress = progress_bar((local.len() + doomed.len()) as u64);
    let uploads = futures::stream::iter(local.iter().map(|(rel, file)| {
        let path = format!("{prefix}{rel}");
        let known = remote.get(&path).cloned();
        let client = &client;
        let progress = &progress;
        async move {
            let action = upload(client, &path, file, known).await;
            progress.inc(1);
            (path, action)
        }
    }))
    .buffer_unordered(PARALLEL)
    .collect::<Vec<_>>()
    .await;
    let mut outcomes: Vec<(String, Action)> = Vec::new();
    for (path, action) in uploads {
        outcomes.push((path, action?));
    }
    for path in doomed {
        let action = match client.delete_file(&path).await {
            Ok(()) => Action::Deleted,
            Err(err) => match as_api_error(&err) {
                Some(api) => Action::Refused(api.to_string()),
                None => return Err(err),
            },
        };
        progress.inc(1);
        outcomes.push((path, action));
    }
    progress.finish_and_clear();
    outcomes.append(&mut refused);
    report(&mut outcomes);
    Ok(())
}

async fn upload(
    client: &ApiClient,
    path: &str,
    file: &Path,
    known: Option<String>,
) -> anyhow::Result<Action> {
    let bytes = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    if known.as_deref() == Some(content_hash(&bytes).as_str()) {
        return Ok(Action::Unchanged);
    }
    match client.write_file(path, bytes).await {
        Ok(StatusCode::CREATED) => Ok(Action::Created),
        Ok(_) => Ok(Action::Updated),
        Err(err) => match as_api_error(&err) {
            Some(api) => Ok(Action::Refused(api.to_string())),
            None => Err(err),
        },
    }
}

/// A folder's files by relative path, and the ones refused before upload.
type LocalFiles = (BTreeMap<String, PathBuf>, Vec<(String, Action)>);

/// The folder's files as `runeflow import` walks a folder (same skip
/// rules: `.git`, `__pycache__`, `.pyc`; links to folders not followed).
/// Names that are not UTF-8 and entries that cannot be read are refused
/// here, before anything is uploaded.
async fn local_files(dir: &Path) -> anyhow::Result<LocalFiles> {
    let folder = Folder::open(dir)?;
    let entries = tokio::task::spawn_blocking(move || folder.list())
        .await
        .context("listing the folder panicked")??;
    let mut files = BTreeMap::new();
    let mut refused = Vec::new();
    for entry in entries {
        let relative = match String::from_utf8(entry.relative) {
            Ok(relative) => relative,
            Err(e) => {
                let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
                refused.push((shown, Action::Refused("file name is not UTF-8".to_owned())));
                continue;
            }
        };
        match entry.location {
            Location::File(path) => {
                files.insert(relative, path);
            }
            Location::Unreadable(reason) => refused.push((relative, Action::Refused(reason))),
            Location::Object(_) => refused.push((
                relative,
                Action::Refused("not a file of the folder".to_owned()),
            )),
        }
    }
    Ok((files, refused))
}

/// A bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Refusals with their reasons, then one summary line.
fn report(outcomes: &mut [(String, Action)]) {
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut counts = [0usize; 5];
    for (path, action) in outcomes.iter() {
        let slot = match action {
            Action::Created => 0,
            Action::Updated => 1,
            Action::Unchanged => 2,
            Action::Deleted => 3,
            Action::Refused(reason) => {
                println!("refused {path}: {reason}");
                4
            }
        };
        counts[slot] += 1;
    }
    println!(
        "{} created, {} updated, {} unchanged, {} deleted, {} refused",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
}
