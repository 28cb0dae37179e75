//! The Redis module store stays equal to PostgreSQL, survives data loss and
//! is repaired after a failed write.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::TestEnv;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runeflow_shared::entities::workspace_file;
use runeflow_shared::store::Lookup;
use runeflow_shared::workspace::{read_through, rebuild};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// A module-store key of this test, as DESIGN.md lays them out (the store
/// keeps its layout private; a test looks at Redis from outside).
fn key(env: &TestEnv, suffix: &str) -> String {
    format!("{}:{suffix}", env.name)
}

/// Live files in PostgreSQL, path → (hash, content).
async fn live_files(env: &TestEnv) -> BTreeMap<String, (String, String)> {
    workspace_file::Entity::find()
        .filter(workspace_file::Column::IsDeleted.eq(false))
        .all(&env.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.path, (r.content_hash, r.content)))
        .collect()
}

/// Asserts the Redis index and blobs equal PostgreSQL's live files.
async fn assert_store_matches(env: &TestEnv, step: &str) {
    let pg = live_files(env).await;
    let index: BTreeMap<String, String> = env.store().index().await.unwrap().into_iter().collect();
    let pg_index: BTreeMap<String, String> = pg
        .iter()
        .map(|(p, (h, _))| (p.clone(), h.clone()))
        .collect();
    assert_eq!(
        index, pg_index,
        "index differs from PostgreSQL after {step}"
    );
    let mut conn = env.store().connection();
    for (path, (hash, content)) in &pg {
        let blob: Option<String> = redis::cmd("GET")
            .arg(key(env, &format!("blob:{hash}")))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            blob.as_deref(),
            Some(content.as_str()),
            "blob of {path} after {step}"
        );
    }
}

#[tokio::test]
async fn store_equals_postgres_after_random_mutations() {
    let env = TestEnv::new().await;
    let mut rng = StdRng::seed_from_u64(0x5eed_2026);
    let paths: Vec<String> = (0..12).map(|i| format!("p{}/m{i}.py", i % 3)).collect();
    let mut last_gen = 0;
    for step in 0..200 {
        let op = rng.random_range(0..10);
        let path = &paths[rng.random_range(0..paths.len())];
        let label = match op {
            0..=4 => {
                // Few distinct contents, so identical rewrites happen often.
                let content = format!("V = {}\n", rng.random_range(0..4));
                env.workspace.write(path, content.as_bytes()).await.unwrap();
                format!("write {path}")
            }
            5..=6 => {
                let _ = env.workspace.delete(path).await;
                format!("delete {path}")
            }
            _ => {
                // Destinations include deleted and never-written paths.
                let to = &paths[rng.random_range(0..paths.len())];
                let _ = env.workspace.rename(path, to).await;
                format!("move {path} -> {to}")
            }
        };
        assert_store_matches(&env, &format!("step {step}: {label}")).await;
        let generation = env.store().generation().await.unwrap();
        assert!(
            generation >= last_gen,
            "generation went backwards at step {step}"
        );
        last_gen = generation;
    }
    assert!(
        last_gen > 50,
        "mutations bumped the generation ({last_gen})"
    );
    let mut conn = env.store().connection();
    let changes: usize = redis::cmd("XLEN")
        .arg(key(&env, "modules:changes"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(changes as u64, last_gen, "one change record per generation");
    env.cleanup().await;
}

#[tokio::test]
async fn identical_rewrite_changes_nothing() {
    let env = TestEnv::new().await;
    let first = env.workspace.write("a.py", b"A = 1\n").await.unwrap();
    let gen1 = env.store().generation().await.unwrap();
    let again = env.workspace.write("a.py", b"A = 1\n").await.unwrap();
    assert!(again.unchanged);
    assert_eq!(again.file.revision, first.file.revision);
    assert_eq!(env.store().generation().await.unwrap(), gen1);
    env.cleanup().await;
}

#[tokio::test]
async fn lookup_finds_a_module_in_one_call() {
    let env = TestEnv::new().await;
    env.workspace
        .write("shared/halo.py", b"HALO = 1\n")
        .await
        .unwrap();
    match env.store().lookup("shared/halo.py").await.unwrap() {
        Lookup::Found { content, .. } => assert_eq!(content, "HALO = 1\n"),
        other => panic!("{other:?}"),
    }
    // No rebuild yet: the index is not known complete, so a miss is unsure.
    assert_eq!(
        env.store().lookup("nope.py").await.unwrap(),
        Lookup::Absent { complete: false }
    );
    rebuild(env.store(), &env.db).await.unwrap();
    assert_eq!(
        env.store().lookup("nope.py").await.unwrap(),
        Lookup::Absent { complete: true }
    );
    env.cleanup().await;
}

/// FLUSHDB loses everything; a read still returns the right content and puts
/// the index entry and blob back. Uses its own Redis database (15).
#[tokio::test]
async fn read_through_after_flushdb() {
    let env = TestEnv::with_redis(common::redis_url_db(15)).await;
    env.workspace
        .write("shared/halo.py", b"HALO = 'v1'\n")
        .await
        .unwrap();
    env.workspace
        .write("shared/halo.py", b"HALO = 'v2'\n")
        .await
        .unwrap();
    env.workspace.write("gone.py", b"G = 1\n").await.unwrap();
    env.workspace.delete("gone.py").await.unwrap();
    rebuild(env.store(), &env.db).await.unwrap();
    let mut conn = env.store().connection();
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(env.store().index().await.unwrap().is_empty());

    let got = read_through(env.store(), &env.db, "shared/halo.py")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.content, "HALO = 'v2'\n");
    let index = env.store().index().await.unwrap();
    assert_eq!(index.get("shared/halo.py"), Some(&got.sha256));
    let blob: Option<String> = redis::cmd("GET")
        .arg(key(&env, &format!("blob:{}", got.sha256)))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(blob.as_deref(), Some("HALO = 'v2'\n"));
    // Deleted and never-written paths stay absent.
    assert!(
        read_through(env.store(), &env.db, "gone.py")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        read_through(env.store(), &env.db, "never.py")
            .await
            .unwrap()
            .is_none()
    );
    // A blob evicted on its own is also re-read.
    redis::cmd("DEL")
        .arg(key(&env, &format!("blob:{}", got.sha256)))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let again = read_through(env.store(), &env.db, "shared/halo.py")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.content, "HALO = 'v2'\n");
    env.cleanup().await;
}

#[tokio::test]
async fn rebuild_removes_stale_entries_and_is_idempotent() {
    let env = TestEnv::new().await;
    env.workspace.write("keep.py", b"K = 1\n").await.unwrap();
    env.workspace.write("del.py", b"D = 1\n").await.unwrap();
    env.workspace.delete("del.py").await.unwrap();
    // Entries PostgreSQL knows nothing about (another tool, an old database).
    let mut conn = env.store().connection();
    redis::cmd("HSET")
        .arg(key(&env, "modules"))
        .arg("ghost.py")
        .arg("00")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // And a stale hash for a live file.
    redis::cmd("HSET")
        .arg(key(&env, "modules"))
        .arg("keep.py")
        .arg("11")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("HDEL")
        .arg(key(&env, "modules:rev"))
        .arg("keep.py")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let report = rebuild(env.store(), &env.db).await.unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(report.tombstones, 1);
    assert_eq!(report.orphans_removed, 1);
    assert_store_matches(&env, "rebuild").await;
    let generation = env.store().generation().await.unwrap();
    let second = rebuild(env.store(), &env.db).await.unwrap();
    assert_eq!(second.orphans_removed, 0);
    assert_eq!(
        env.store().generation().await.unwrap(),
        generation,
        "second rebuild changes nothing"
    );
    assert_store_matches(&env, "second rebuild").await;
    env.cleanup().await;
}

/// An older revision applied after a newer one (two writers racing) is ignored.
#[tokio::test]
async fn late_older_writes_do_not_win() {
    use runeflow_shared::store::Mutation;
    use std::sync::Arc;
    let env = TestEnv::new().await;
    let new = Mutation::Put {
        path: "r.py".into(),
        revision: 10,
        sha256: "b".repeat(64),
        content: Arc::from("NEW"),
    };
    let old = Mutation::Put {
        path: "r.py".into(),
        revision: 9,
        sha256: "a".repeat(64),
        content: Arc::from("OLD"),
    };
    env.store().apply(&[new]).await.unwrap();
    env.store().apply(&[old]).await.unwrap();
    let index: HashMap<String, String> = env.store().index().await.unwrap();
    assert_eq!(index["r.py"], "b".repeat(64));
    let del_old = Mutation::Delete {
        path: "r.py".into(),
        revision: 8,
    };
    env.store().apply(&[del_old]).await.unwrap();
    assert!(env.store().index().await.unwrap().contains_key("r.py"));
    env.cleanup().await;
}

/// Redis dies after PostgreSQL committed: the write still succeeds, and the
/// repair loop publishes it once Redis is back.
#[tokio::test]
async fn failed_publish_is_repaired_when_redis_returns() {
    let port = common::free_port();
    let mut redis = common::start_redis(port);
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    env.workspace.write("a.py", b"A = 1\n").await.unwrap();

    redis.kill().ok();
    redis.wait().ok();
    let outcome = env
        .workspace
        .write("a.py", b"A = 2\n")
        .await
        .expect("write succeeds without Redis");
    assert!(outcome.generation.is_none(), "publish failed");
    env.workspace.write("b.py", b"B = 1\n").await.unwrap();
    assert!(env.workspace.publisher.pending_repairs() >= 2);

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let publisher = env.workspace.publisher.clone();
    let db = env.db.clone();
    let repair = tokio::spawn(async move {
        publisher
            .run_repair(db, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
    });
    let mut redis = common::start_redis(port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env.workspace.publisher.pending_repairs() > 0
        || env.store().index().await.map(|i| i.len()).unwrap_or(0) < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "repair did not happen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true).unwrap();
    repair.await.unwrap();
    // The restarted Redis had nothing; the repaired entries are the latest.
    let got = read_through(env.store(), &env.db, "a.py")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.content, "A = 2\n");
    assert_eq!(
        read_through(env.store(), &env.db, "b.py")
            .await
            .unwrap()
            .unwrap()
            .content,
        "B = 1\n"
    );
    redis.kill().ok();
    redis.wait().ok();
    common::drop_database(&env.name).await;
}
