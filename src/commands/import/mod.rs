//! `runeflow import <SOURCE>`: a one-shot import of an existing workspace
//! from a folder or `s3://bucket/prefix`. It goes straight to PostgreSQL and
//! Redis (no API needed) but through the same [`Workspace::write`] as the
//! API, so the same path rules, size limit, entity detection, `workflows`
//! rows and module store mutation apply. A refused file is reported and the
//! rest go on; only a fatal error (PostgreSQL, Redis or S3 unreachable, a
//! missing folder) gives a non-zero exit code.
//!
//! Pieces: [`source`] (the listing/reading interface and skip rules),
//! [`folder`] and [`s3`] (the two sources), [`plan`] (one file: write, or
//! classify for `--dry-run`), [`report`] (the output lines).
//!
//! [`Workspace::write`]: runeflow_shared::workspace::Workspace::write

pub(super) mod folder;
mod plan;
mod report;
mod s3;
pub(super) mod source;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};

use super::workspace_folder::workspace_folder;
use crate::cli::ImportArgs;
use crate::connect;
use plan::Mode;
use report::Tally;
use source::Source;

/// Files read and written at once (each holds at most one file in memory
/// and one PostgreSQL connection of the pool of 16).
const CONCURRENCY: usize = 8;

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let prefix = workspace_folder(&args.prefix)?;
    let source = Source::open(&args.source, args.s3_endpoint.as_deref())?;
    let workspace = connect::workspace(&args.config).await?;
    let pending = super::init::pending_migrations(&workspace.db).await?;
    if !pending.is_empty() {
        bail!(
            "the database schema is not up to date ({} pending migrations); run `runeflow init` first",
            pending.len()
        );
    }
    let mut entries = source
        .list()
        .await
        .with_context(|| format!("cannot list '{}'", args.source))?;
    entries.sort_by(|a, b| a.relative.cmp(&b.relative));

    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Write
    };
    let mut tally = Tally::default();
    let mut lines = futures::stream::iter(entries)
        .map(|entry| plan::import_one(&workspace, &source, &prefix, entry, mode))
        .buffered(CONCURRENCY);
    let imported: anyhow::Result<()> = async {
        while let Some(line) = lines
            .try_next()
            .await
            .with_context(|| format!("importing '{}' stopped", args.source))?
        {
            tally.add(line.status);
            println!("{line}");
        }
        Ok(())
    }
    .await;
    if !args.dry_run {
        record_import(
            &workspace.db,
            &args.source,
            &prefix,
            &tally,
            imported.is_ok(),
        )
        .await?;
    }
    imported?;
    println!("{tally}");
    if args.dry_run {
        eprintln!("dry run: nothing was changed");
    }
    let unpublished = workspace.publisher.pending_repairs();
    if unpublished > 0 {
        bail!(
            "Redis did not take {unpublished} of the imported files (they are committed in \
             PostgreSQL); run `runeflow init` to rebuild the module store"
        );
    }
    Ok(())
}

/// One audit row per import that may have written (actor `cli`: the import
/// runs on PostgreSQL directly, not through the API).
async fn record_import(
    db: &sea_orm::DatabaseConnection,
    source: &str,
    prefix: &str,
    tally: &Tally,
    ok: bool,
) -> anyhow::Result<()> {
    let folder = if prefix.is_empty() { "/" } else { prefix };
    let outcome = if ok {
        runeflow_shared::audit::Outcome::Ok
    } else {
        runeflow_shared::audit::Outcome::Failed
    };
    let entry = runeflow_shared::audit::Entry::cli(
        "workspace.import",
        format!(
            "{source} -> {folder} ({} created, {} updated)",
            tally.created, tally.updated
        ),
        outcome,
    );
    runeflow_shared::audit::record(db, &entry)
        .await
        .context("recording the import in the audit log failed")
}
