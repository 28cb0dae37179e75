//! `runeflow secrets new-key|rotate-key`.

use anyhow::Context;
use runeflow_shared::secrets::{KEY_ENV, SecretKey};
use runeflow_shared::{audit, config_entries};

use crate::cli::SecretsCommand;
use crate::connect;

/// Where `rotate-key` reads the key to re-seal under (never a flag).
pub const NEW_KEY_ENV: &str = "RUNEFLOW_NEW_SECRET_KEY";

pub async fn run(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::NewKey => {
            println!("{}", SecretKey::generate().to_hex().as_str());
            Ok(())
        }
        SecretsCommand::RotateKey(args) => {
            let old = SecretKey::from_env()?
                .with_context(|| format!("{KEY_ENV} (the current key) is not set"))?;
            let new_text = std::env::var(NEW_KEY_ENV)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .with_context(|| format!("{NEW_KEY_ENV} (the key to rotate to) is not set"))?;
            let new = SecretKey::from_hex(&new_text)
                .map_err(|e| anyhow::anyhow!(e.to_string().replace(KEY_ENV, NEW_KEY_ENV)))?;
            anyhow::ensure!(
                old.id() != new.id(),
                "{NEW_KEY_ENV} is the same key as {KEY_ENV}"
            );
            let db = connect::postgres(&args.config).await?;
            // The rotation records itself in the audit log, in its own
            // transaction; a failed one is recorded here, best effort.
            let resealed = match config_entries::rotate(&db, &old, &new).await {
                Ok(n) => n,
                Err(err) => {
                    let entry = audit::Entry::cli(
                        config_entries::ROTATE_ACTION,
                        format!("key {} -> {}", old.id(), new.id()),
                        audit::Outcome::Failed,
                    );
                    if let Err(audit_err) = audit::record(&db, &entry).await {
                        eprintln!("runeflow: the failed rotation was not audited: {audit_err}");
                    }
                    return Err(err).context("rotating the secret key failed; nothing was changed");
                }
            };
            println!(
                "re-sealed {resealed} secret(s) under key {}; now give the API and every worker \
                 {KEY_ENV}=<the new key> and restart them (they refuse the old key)",
                new.id()
            );
            Ok(())
        }
    }
}
