//! Test harness: every test gets its own PostgreSQL database (migrated) and
//! its own Redis key prefix, so tests run in parallel against the real
//! services without seeing each other.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use runeflow_api::AppState;
use runeflow_shared::config::Config;
use runeflow_shared::redis_conn;
use runeflow_shared::store::ModuleStore;
use runeflow_shared::workspace::{Publisher, Workspace};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tower::ServiceExt;

pub mod worker_process;

pub const TOKEN: &str = "test-token";

/// PostgreSQL URL of a database the tests may create others from.
pub fn admin_database_url() -> String {
    std::env::var("RUNEFLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis URL (database 0 unless the variable says otherwise).
pub fn redis_url() -> String {
    std::env::var("RUNEFLOW_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// `redis_url()` with another database number, for tests that FLUSHDB.
pub fn redis_url_db(n: u32) -> String {
    let base = redis_url();
    let root = match base.rsplit_once('/') {
        Some((root, db)) if db.chars().all(|c| c.is_ascii_digit()) => root.to_owned(),
        _ => base.trim_end_matches('/').to_owned(),
    };
    format!("{root}/{n}")
}

fn url_with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{db}{query}")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for this test's database and Redis prefix.
pub fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand: u32 = rand::random();
    format!("rf_t_{}_{n}_{rand:08x}", std::process::id())
}

/// One test's private world.
pub struct TestEnv {
    pub name: String,
    pub database_url: String,
    pub redis_url: String,
    pub db: DatabaseConnection,
    pub workspace: Workspace,
    pub config: Config,
    waiters: std::sync::OnceLock<runeflow_api::waiters::Waiters>,
    /// One API state for all of this env's requests, as one API process
    /// would have (its caches included).
    state: std::sync::OnceLock<AppState>,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_redis(redis_url()).await
    }

    /// Like [`TestEnv::new`] with a Redis URL of the test's choosing.
    pub async fn with_redis(redis_url: String) -> Self {
        let name = unique_name();
        let database_url = create_database(&name).await;
        let db = Database::connect(database_url.as_str())
            .await
            .expect("connect test db");
        runeflow::commands::init::migrate(&db)
            .await
            .expect("migrate");
        let conn = redis_conn::connect(&redis_url)
            .await
            .expect("connect redis");
        let store = ModuleStore::new(conn, &name);
        let mut config = Config::new(database_url.clone(), redis_url.clone());
        config.redis_prefix = name.clone();
        config.api_token = Some(TOKEN.to_owned());
        config.max_file_bytes = 64 * 1024;
        let workspace = Workspace::new(db.clone(), Publisher::new(store), config.max_file_bytes);
        TestEnv {
            name,
            database_url,
            redis_url,
            db,
            workspace,
            config,
            waiters: std::sync::OnceLock::new(),
            state: std::sync::OnceLock::new(),
        }
    }

    /// This env with an API that seals secrets under `key` (as
    /// RUNEFLOW_SECRET_KEY gives one to `runeflow api`).
    pub fn with_secret_key(mut self, key: runeflow_shared::secrets::SecretKey) -> Self {
        let state = self.state().with_secret_key(Some(key));
        self.state = std::sync::OnceLock::from(state);
        self
    }

    pub fn store(&self) -> &ModuleStore {
        self.workspace.publisher.store()
    }

    pub fn app(&self) -> Router {
        runeflow_api::app(self.state())
    }

    pub fn state(&self) -> AppState {
        self.state
            .get_or_init(|| {
                let queue =
                    runeflow_api::queue::JobQueue::new(self.store().connection(), &self.name);
                AppState::new(self.workspace.clone(), queue, self.waiters(), TOKEN)
                    .with_git(runeflow::commands::api::git_settings(&self.config))
            })
            .clone()
    }

    /// The one integer a `SELECT count(*) ...` returns, on this env's database.
    pub async fn count(&self, sql: &str) -> i64 {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
            .await
            .expect("query")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("an integer")
    }

    /// Serves this env's API over HTTP on a free loopback port (for the
    /// binary's client verbs); stops when the handle drops.
    pub async fn serve_http(&self) -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = self.state();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = runeflow_api::serve(listener, state, async {
                let _ = stop_rx.await;
            })
            .await;
        });
        HttpServer {
            url,
            _stop: stop_tx,
            _task: task,
        }
    }

    /// The "finished" subscription of this test (one per env).
    pub fn waiters(&self) -> runeflow_api::waiters::Waiters {
        self.waiters
            .get_or_init(|| {
                runeflow_api::waiters::Waiters::spawn(
                    self.redis_url.clone(),
                    runeflow_shared::jobs::finished_channel(&self.name),
                )
            })
            .clone()
    }

    /// Sends one request through the router; returns status, headers and body.
    pub async fn call(&self, req: Request<Body>) -> Reply {
        let resp = self.app().oneshot(req).await.expect("router never fails");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("read body")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// One request with bearer `token` (none when empty): a JSON body, or
    /// for a PUT without one a small Python file.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if !token.is_empty() {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None if method == "PUT" => builder.body(Body::from("X = 1\n")),
            None => builder.body(Body::empty()),
        };
        self.call(req.expect("a valid request")).await
    }

    pub async fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.call(
            authed("PUT", &format!("/api/files/{path}"))
                .body(Body::from(body.into()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(authed("GET", uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(
            authed("DELETE", &format!("/api/files/{path}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, json: serde_json::Value) -> Reply {
        self.call(
            authed("POST", uri)
                .header("content-type", "application/json")
                .body(Body::from(json.to_string()))
                .unwrap(),
        )
        .await
    }

    /// Drops the database and this test's Redis keys.
    pub async fn cleanup(self) {
        let prefix = self.name.clone();
        let mut conn = self.store().connection();
        // Module store keys and the apalis queue's keys.
        for pattern in [format!("{prefix}:*"), format!("{prefix}-executions*")] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
        self.db.close().await.ok();
        drop_database(&self.name).await;
    }
}

pub fn authed(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error.code` of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub async fn create_database(name: &str) -> String {
    let admin = admin_database_url();
    let conn = Database::connect(admin.as_str())
        .await
        .expect("connect admin db");
    conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    conn.close().await.ok();
    url_with_database(&admin, name)
}

pub async fn drop_database(name: &str) {
    let admin = admin_database_url();
    if let Ok(conn) = Database::connect(admin.as_str()).await {
        let _ = conn
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        conn.close().await.ok();
    }
}

/// An API served over HTTP by the test process.
pub struct HttpServer {
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _task: tokio::task::JoinHandle<()>,
}

/// A worker running inside the test process.
pub struct WorkerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), runeflow_worker::run::WorkerRunError>>>,
}

impl WorkerHandle {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Worker settings for tests: fast polls and heartbeats, short timeouts.
pub fn test_worker_config() -> runeflow_worker::WorkerConfig {
    runeflow_worker::WorkerConfig {
        concurrency: 2,
        poll_ms: 200,
        heartbeat_ms: 1000,
        missed_heartbeats: 3,
        default_timeout: 30.0,
        drain_secs: 10,
        // The tests' python3 may live under /root, unreadable by child
        // uids; tests/containment.rs turns child users on.
        child_users: runeflow_worker::child_users::ChildUsersMode::Off,
        ..Default::default()
    }
}

impl TestEnv {
    /// Starts an in-process worker on this env's database and prefix.
    pub async fn start_worker(&self, config: runeflow_worker::WorkerConfig) -> WorkerHandle {
        let deps = runeflow_worker::run::WorkerDeps {
            db: self.db.clone(),
            redis: self.store().connection(),
            redis_url: self.redis_url.clone(),
            prefix: self.name.clone(),
            secret_key: None,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runeflow_worker::run::run(deps, config, async move {
            let _ = stop_rx.await;
        }));
        WorkerHandle {
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Runs a workflow and waits for its outcome (up to 60 s).
    pub async fn execute(
        &self,
        workflow: &str,
        parameters: serde_json::Value,
    ) -> serde_json::Value {
        let r = self
            .post_json(
                "/api/executions",
                serde_json::json!({"workflow": workflow, "parameters": parameters, "wait": 60}),
            )
            .await;
        assert!(
            r.status == StatusCode::OK,
            "execution of {workflow} did not finish: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// Writes `files` (path, content) through the API.
    pub async fn put_files(&self, files: &[(&str, &str)]) {
        for (path, content) in files {
            let r = self.put(path, content.as_bytes().to_vec()).await;
            assert!(r.status.is_success(), "PUT {path}: {}", r.text());
        }
    }
}

/// A free TCP port on loopback (for a private redis-server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Starts a private, non-persistent redis-server on `port` and waits until
/// it accepts connections. The caller kills it.
pub fn start_redis(port: u16) -> std::process::Child {
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    for _ in 0..250 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().ok();
    child.wait().ok();
    panic!("redis-server did not start on {port}");
}
