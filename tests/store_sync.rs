//! Nothing is lost between PostgreSQL and Redis: a write committed by a
//! process that could not publish it, and then died, reaches the module
//! store when an API or a worker starts (or from an API that keeps running),
//! without `runeflow init`; and a blob in Redis that is not what its hash
//! names is never imported.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{TestEnv, test_worker_config};
use runeflow_shared::entities::workspace_file;
use runeflow_shared::hash::content_hash;
use runeflow_shared::redis_conn;
use runeflow_shared::store::{Lookup, ModuleStore};
use runeflow_shared::workspace::{Publisher, Workspace, rebuild, reconcile};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

const MODULE: &str = "lib/values.py";
const FLOW: &str = "flows/get.py";
const FLOW_SOURCE: &str = "from runeflow import workflow\nimport lib.values\n\n\n@workflow\ndef get_value():\n    return lib.values.VALUE\n";

/// A Redis user of this test that may do anything but run scripts, so every
/// module-store write (a Lua script) is refused: the fault between a commit
/// and its publish. Dropped with [`RefusingRedis::remove`].
struct RefusingRedis {
    user: String,
    url: String,
}

impl RefusingRedis {
    async fn create(env: &TestEnv) -> Self {
        let user = env.name.clone();
        let password = format!("pw-{user}");
        let mut conn = env.store().connection();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .arg("-@scripting")
            .query_async::<()>(&mut conn)
            .await
            .expect("ACL SETUSER (Redis 6 or later)");
        let url = env
            .redis_url
            .replacen("redis://", &format!("redis://{user}:{password}@"), 1);
        RefusingRedis { user, url }
    }

    /// A workspace whose publishes all fail (PostgreSQL commits still work).
    async fn workspace(&self, env: &TestEnv) -> Workspace {
        let conn = redis_conn::connect(&self.url)
            .await
            .expect("connect as the refusing user");
        let store = ModuleStore::new(conn, &env.name);
        Workspace::new(
            env.db.clone(),
            Publisher::new(store),
            env.config.max_file_bytes,
        )
    }

    async fn remove(self, env: &TestEnv) {
        let mut conn = env.store().connection();
        let _: Result<(), _> = redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&self.user)
            .query_async(&mut conn)
            .await;
    }
}

/// Live files in PostgreSQL, path → hash.
async fn live_hashes(env: &TestEnv) -> BTreeMap<String, String> {
    workspace_file::Entity::find()
        .filter(workspace_file::Column::IsDeleted.eq(false))
        .all(&env.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.path, r.content_hash))
        .collect()
}

/// The store's index, path → hash.
async fn indexed(env: &TestEnv) -> BTreeMap<String, String> {
    env.store().index().await.unwrap().into_iter().collect()
}

/// Waits (bounded) until the store's index equals PostgreSQL's live files.
async fn store_catches_up(env: &TestEnv, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if indexed(env).await == live_hashes(env).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes v1 normally, then — through a process whose publishes fail and
/// which then dies — changes the module, adds one file and deletes another.
/// Returns with PostgreSQL ahead of Redis.
async fn commit_without_publishing(env: &TestEnv) {
    env.workspace.write(MODULE, b"VALUE = 1\n").await.unwrap();
    env.workspace
        .write(FLOW, FLOW_SOURCE.as_bytes())
        .await
        .unwrap();
    env.workspace
        .write("lib/old.py", b"OLD = 1\n")
        .await
        .unwrap();
    // The deployment ran `runeflow init` once: the index is known complete,
    // so nothing below rebuilds it wholesale.
    rebuild(env.store(), &env.db).await.unwrap();

    let refusing = RefusingRedis::create(env).await;
    let dying = refusing.workspace(env).await;
    let outcome = dying.write(MODULE, b"VALUE = 2\n").await.unwrap();
    assert!(outcome.generation.is_none(), "the publish must have failed");
    dying.write("lib/new.py", b"NEW = 1\n").await.unwrap();
    dying.delete("lib/old.py").await.unwrap();
    assert_eq!(
        dying.publisher.pending_repairs(),
        3,
        "queued in memory only"
    );
    drop(dying); // the process dies: its repair queue is gone
    refusing.remove(env).await;

    assert_ne!(
        indexed(env).await,
        live_hashes(env).await,
        "Redis must be behind PostgreSQL before the restart"
    );
}

/// The API process died right after committing; the next `runeflow api`
/// to start publishes what it committed.
#[tokio::test]
async fn an_api_start_publishes_writes_a_dead_api_committed() {
    let env = TestEnv::new().await;
    commit_without_publishing(&env).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workspace = Workspace::new(
        env.db.clone(),
        Publisher::new(env.store().clone()),
        env.config.max_file_bytes,
    );
    let config = env.config.clone();
    let api = tokio::spawn(async move {
        runeflow::commands::api::serve(&config, workspace, listener, async {
            let _ = stop_rx.await;
        })
        .await
    });
    assert!(
        store_catches_up(&env, Duration::from_secs(20)).await,
        "the API start did not publish the lost writes: index {:?}, PostgreSQL {:?}",
        indexed(&env).await,
        live_hashes(&env).await
    );
    let found = env.store().lookup(MODULE).await.unwrap();
    assert!(
        matches!(&found, Lookup::Found { content, .. } if content == "VALUE = 2\n"),
        "{found:?}"
    );
    let _ = stop_tx.send(());
    api.await.unwrap().unwrap();
    env.cleanup().await;
}

/// The same, with only a worker started: it publishes the lost writes before
/// it loads its index, so the first execution imports the committed code.
#[tokio::test]
async fn a_worker_start_publishes_writes_a_dead_api_committed() {
    let env = TestEnv::new().await;
    commit_without_publishing(&env).await;

    let worker = env.start_worker(test_worker_config()).await;
    let e = env.execute("get_value", json!({})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(
        e["result"], 2,
        "the worker imported the unpublished version"
    );
    assert_eq!(indexed(&env).await, live_hashes(&env).await);
    worker.stop().await;
    env.cleanup().await;
}

/// With several API processes, one that keeps running publishes what
/// another committed before dying, at its next periodic reconcile.
#[tokio::test]
async fn a_running_api_publishes_another_api_s_lost_writes() {
    let env = TestEnv::new().await;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let publisher = env.workspace.publisher.clone();
    let db = env.db.clone();
    let repair = tokio::spawn(async move {
        publisher
            .run_repair_every(db, Duration::from_millis(200), async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
    });
    commit_without_publishing(&env).await;
    assert!(
        store_catches_up(&env, Duration::from_secs(20)).await,
        "the running API's reconcile did not publish the lost writes"
    );
    stop_tx.send(true).unwrap();
    repair.await.unwrap();
    env.cleanup().await;
}

/// A reconcile pass reports what it published, and a second finds nothing.
#[tokio::test]
async fn reconcile_publishes_only_what_the_store_is_behind_on() {
    let env = TestEnv::new().await;
    commit_without_publishing(&env).await;
    let first = reconcile(env.store(), &env.db).await.unwrap();
    assert_eq!(first.checked, 4, "rows, the deleted one included");
    assert_eq!(first.republished, 3, "{first:?}");
    assert_eq!(indexed(&env).await, live_hashes(&env).await);
    let generation = env.store().generation().await.unwrap();
    let second = reconcile(env.store(), &env.db).await.unwrap();
    assert_eq!(second.republished, 0);
    assert_eq!(env.store().generation().await.unwrap(), generation);
    env.cleanup().await;
}

/// A blob rewritten in Redis under the hash of real content (what user code
/// that reached Redis could do) is refused: the workflow imports the
/// PostgreSQL content, and the forged blob is replaced.
#[tokio::test]
async fn a_forged_blob_is_refused_and_replaced() {
    let env = TestEnv::new().await;
    env.workspace.write(MODULE, b"VALUE = 1\n").await.unwrap();
    env.workspace
        .write(FLOW, FLOW_SOURCE.as_bytes())
        .await
        .unwrap();
    let sha = content_hash(b"VALUE = 1\n");
    let blob_key = format!("{}:blob:{sha}", env.name);
    let mut conn = env.store().connection();
    redis::cmd("SET")
        .arg(&blob_key)
        .arg("VALUE = 666\n")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(env.store().blob(&sha).await.unwrap(), None, "refused");
    assert_eq!(
        env.store().lookup(MODULE).await.unwrap(),
        Lookup::BlobMissing {
            sha256: sha.clone()
        }
    );

    let worker = env.start_worker(test_worker_config()).await;
    let e = env.execute("get_value", json!({})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["result"], 1, "the forged blob was imported");
    let repaired: Option<String> = redis::cmd("GET")
        .arg(&blob_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(repaired.as_deref(), Some("VALUE = 1\n"), "written back");
    worker.stop().await;
    env.cleanup().await;
}
