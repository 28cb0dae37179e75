//! Connecting to PostgreSQL and Redis with errors that name the service and
//! where it was expected (credentials masked).

use std::time::Duration;

use anyhow::Context;
use runeflow_shared::config::Config;
use runeflow_shared::redis_conn;
use runeflow_shared::store::ModuleStore;
use runeflow_shared::workspace::{Publisher, Workspace};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Opens the PostgreSQL pool and checks it answers.
pub async fn postgres(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url()?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(16)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("PostgreSQL is unreachable at {}", redact(url)))
}

/// Opens the reconnecting Redis connection and wraps it as the module store.
pub async fn module_store(config: &Config) -> anyhow::Result<ModuleStore> {
    let url = config.redis_url()?;
    let conn = redis_conn::connect(url)
        .await
        .with_context(|| format!("Redis is unreachable at {}", redact(url)))?;
    Ok(ModuleStore::new(conn, &config.redis_prefix))
}

/// Both connections, as the workspace every writer uses.
pub async fn workspace(config: &Config) -> anyhow::Result<Workspace> {
    let db = postgres(config).await?;
    let store = module_store(config).await?;
    Ok(Workspace::new(
        db,
        Publisher::new(store),
        config.max_file_bytes,
    ))
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("redis://:pw@h:6379/2"), "redis://:***@h:6379/2");
        assert_eq!(redact("redis://h:6379/2"), "redis://h:6379/2");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
