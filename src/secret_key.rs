//! RUNEFLOW_SECRET_KEY for the server processes: parsed, then checked
//! against the stored secrets, so a missing or wrong key stops `init`, the
//! API or a worker at start-up instead of failing workflows one by one.

use anyhow::Context;
use runeflow_shared::config_entries::check_secret_key;
use runeflow_shared::secrets::SecretKey;
use sea_orm::ConnectionTrait;

/// The key, or `None` when unset and no secret needs one.
pub async fn load(db: &impl ConnectionTrait) -> anyhow::Result<Option<SecretKey>> {
    let key = SecretKey::from_env()?;
    check_secret_key(db, key.as_ref())
        .await
        .context("refusing to start")?;
    Ok(key)
}
