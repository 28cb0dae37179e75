//! What both benches need: a database and Redis prefix of their own on the
//! machine's services, created at start and removed at the end.
#![allow(dead_code)]

pub mod cpu;

use runeflow_shared::redis_conn;
use runeflow_shared::store::ModuleStore;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A migrated database named `name` and a module store under prefix `name`.
pub struct BenchEnv {
    pub name: String,
    pub database_url: String,
    pub redis_url: String,
    pub db: DatabaseConnection,
    pub store: ModuleStore,
    admin: DatabaseConnection,
}

impl BenchEnv {
    pub async fn create(name: String) -> anyhow::Result<Self> {
        let admin_url = env_or(
            "RUNEFLOW_TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let redis_url = env_or("RUNEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0");
        let admin = Database::connect(admin_url.as_str()).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let root = admin_url
            .rsplit_once('/')
            .map(|(r, _)| r)
            .unwrap_or(&admin_url);
        let database_url = format!("{root}/{name}");
        let db = Database::connect(database_url.as_str()).await?;
        runeflow::commands::init::migrate(&db).await?;
        let store = ModuleStore::new(redis_conn::connect(&redis_url).await?, &name);
        Ok(BenchEnv {
            name,
            database_url,
            redis_url,
            db,
            store,
            admin,
        })
    }

    /// Deletes the Redis keys (module store and queue) and drops the database.
    pub async fn remove(self) -> anyhow::Result<()> {
        clear_prefix(&self.store, &self.name).await;
        self.db.close().await.ok();
        self.admin
            .execute_unprepared(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name))
            .await?;
        Ok(())
    }
}

/// Deletes every key of a prefix: its module store and its apalis queue.
pub async fn clear_prefix(store: &ModuleStore, prefix: &str) {
    let mut conn = store.connection();
    for pattern in [format!("{prefix}:*"), format!("{prefix}-executions*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }
}
