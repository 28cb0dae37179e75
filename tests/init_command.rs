//! `runeflow init` through the real binary, and the migrations up and down.

mod common;

use std::process::{Command, Output};

use runeflow_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

fn init(database_url: &str, redis_url: &str, prefix: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("init")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run runeflow init")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn table_names(url: &str) -> Vec<String> {
    let db = Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                .to_owned(),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

#[tokio::test]
async fn init_migrates_warms_and_is_idempotent_and_concurrent_safe() {
    let name = common::unique_name();
    let url = common::create_database(&name).await;
    let redis = common::redis_url();

    // Two at once on an empty database: both succeed.
    let (a, b) = {
        let (u1, r1, p1) = (url.clone(), redis.clone(), name.clone());
        let (u2, r2, p2) = (url.clone(), redis.clone(), name.clone());
        let a = std::thread::spawn(move || init(&u1, &r1, &p1));
        let b = std::thread::spawn(move || init(&u2, &r2, &p2));
        (a.join().unwrap(), b.join().unwrap())
    };
    assert!(a.status.success(), "first init: {}", stderr(&a));
    assert!(b.status.success(), "second init: {}", stderr(&b));
    assert_eq!(
        table_names(&url).await,
        [
            "api_tokens",
            "audit_log",
            "config_entries",
            "endpoint_keys",
            "executions",
            "git_sync",
            "idempotency_keys",
            "schedules",
            "seaql_migrations",
            "workflows",
            "workspace_files"
        ]
    );

    // Files written straight into PostgreSQL (as a restore would) get warmed.
    let db = Database::connect(url.as_str()).await.unwrap();
    for i in 0..5 {
        db.execute_unprepared(&format!(
            "INSERT INTO workspace_files (path, content, content_hash, entity_type, size) \
             VALUES ('m{i}.py', 'X = {i}', '{}', 'module', 5)",
            runeflow_shared::hash::content_hash(format!("X = {i}").as_bytes())
        ))
        .await
        .unwrap();
    }
    let again = init(&url, &redis, &name);
    assert!(again.status.success(), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(out.contains("warmed 5 files"), "{out}");
    assert!(out.contains(" ms"), "reports its duration: {out}");
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("HLEN")
        .arg(format!("{name}:modules"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 5);
    let third = init(&url, &redis, &name);
    assert!(stdout(&third).contains("warmed 5 files"));

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{name}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    db.close().await.ok();
    common::drop_database(&name).await;
}

#[tokio::test]
async fn init_names_the_unreachable_service() {
    let name = common::unique_name();
    let url = common::create_database(&name).await;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let out = init(
        &format!("postgres://postgres@127.0.0.1:{dead_port}/x"),
        &common::redis_url(),
        &name,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("PostgreSQL is unreachable"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = init(&url, &format!("redis://127.0.0.1:{dead_port}/0"), &name);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Redis is unreachable"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("init")
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("DATABASE_URL is not set"),
        "{}",
        stderr(&out)
    );
    common::drop_database(&name).await;
}

#[tokio::test]
async fn migrations_go_down_and_up_cleanly() {
    let name = common::unique_name();
    let url = common::create_database(&name).await;
    let db = Database::connect(url.as_str()).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        0
    );
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(table_names(&url).await, ["seaql_migrations"]);
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        Migrator::migrations().len()
    );
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        table_names(&url).await,
        [
            "api_tokens",
            "audit_log",
            "config_entries",
            "endpoint_keys",
            "executions",
            "git_sync",
            "idempotency_keys",
            "schedules",
            "seaql_migrations",
            "workflows",
            "workspace_files"
        ]
    );
    // Down to the first three migrations (workspace files, workflows,
    // executions): every later one, `git_sync` included, goes; then up.
    let later = u32::try_from(Migrator::migrations().len() - 3).unwrap();
    Migrator::down(&db, Some(later)).await.unwrap();
    assert!(!table_names(&url).await.contains(&"git_sync".to_owned()));
    assert!(table_names(&url).await.contains(&"executions".to_owned()));
    Migrator::up(&db, None).await.unwrap();
    db.close().await.ok();
    common::drop_database(&name).await;
}
