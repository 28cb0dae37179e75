//! Git remote hygiene through the API (issue 9, G): only https remotes
//! unless the development setting is on; a bad remote is a 400
//! `invalid_remote` checked before any lock or network access; credentials
//! never go over plain http nor follow a redirect to another host; fetches
//! stop at a time and a size limit; and slow remotes leave the API's
//! PostgreSQL pool to ordinary requests.
//!
//! Remotes are simulated with local TCP servers: one that accepts and then
//! stalls, one that answers every request with a canned HTTP reply.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use common::{TOKEN, TestEnv, authed};
use runeflow_api::AppState;
use runeflow_shared::workspace::Publisher;
use runeflow_shared::workspace::Workspace;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A remote that accepts connections and never answers; counts them and
/// keeps them open until dropped.
struct StallingRemote {
    url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingRemote {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        StallingRemote {
            url: format!("http://127.0.0.1:{port}/team/flows.git"),
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for StallingRemote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A remote answering every request with `reply`; records each request's
/// head (request line and headers).
struct CannedRemote {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CannedRemote {
    async fn start(reply: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, reply) = (seen.clone(), reply.clone());
                tokio::spawn(async move {
                    // One request per connection is enough for libgit2 here.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        CannedRemote {
            port,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for CannedRemote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn dev_env() -> TestEnv {
    let mut env = TestEnv::new().await;
    env.config.git_allow_insecure = true;
    env
}

/// Without the development setting, only https remotes pass, and every
/// refusal is a 400 `invalid_remote` naming the problem. The check comes
/// before the branch lock (held here from outside, as another API process
/// would) and before any connection to the remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_remotes_are_refused_before_any_lock_or_network() {
    use runeflow_api::git::lock::{LOCK_SQL, UNLOCK_SQL, lock_key};
    let env = TestEnv::new().await;
    let listener = StallingRemote::start().await;
    let path = std::env::temp_dir().join(format!("{}-local.git", env.name));
    git2::Repository::init_bare(&path).unwrap();
    let local = path.to_string_lossy().into_owned();
    let cases = [
        ("not a url".to_owned(), "'not a url' is not a URL"),
        ("flows".to_owned(), "'flows' is not a URL"),
        (listener.url.clone(), "http:// remotes are refused"),
        (format!("file://{local}"), "file:// remotes are refused"),
        (local.clone(), "local path remotes are refused"),
        (
            "https://bob:secret@git.example.com/team/flows.git".to_owned(),
            "credentials must not be part of the remote URL",
        ),
        (
            "git@git.example.com:team/flows.git".to_owned(),
            "ssh remotes",
        ),
        (
            "ftp://git.example.com/flows.git".to_owned(),
            "unsupported remote scheme 'ftp'",
        ),
        (String::new(), "remote must not be empty"),
    ];
    // Every branch these requests name is locked by "another API process".
    let other_api = env.db.begin().await.unwrap();
    for (remote, _) in &cases {
        other_api
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                LOCK_SQL,
                [lock_key(remote, "main").into()],
            ))
            .await
            .unwrap();
    }
    for (remote, why) in &cases {
        for verb in ["push", "pull"] {
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                env.post_json(
                    &format!("/api/git/{verb}"),
                    json!({"remote": remote, "branch": "main"}),
                ),
            )
            .await
            .unwrap_or_else(|_| panic!("{verb} of {remote:?} waited for the branch lock"));
            assert_eq!(r.status, 400, "{verb} {remote:?}: {}", r.text());
            assert_eq!(r.error_code(), "invalid_remote", "{}", r.text());
            assert!(r.text().contains(why), "{verb} {remote:?}: {}", r.text());
        }
    }
    assert_eq!(
        listener.accepted(),
        0,
        "the refused http remote was contacted"
    );
    for (remote, _) in &cases {
        other_api
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                UNLOCK_SQL,
                [lock_key(remote, "main").into()],
            ))
            .await
            .unwrap();
    }
    other_api.commit().await.unwrap();

    // The same local remote works once the development setting is on.
    let dev = dev_env().await;
    dev.put_files(&[("a.py", "A = 1\n")]).await;
    let r = dev
        .post_json("/api/git/push", json!({"remote": local, "branch": "main"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = dev
        .post_json(
            "/api/git/push",
            json!({"remote": format!("file://{local}"), "branch": "main"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let _ = std::fs::remove_dir_all(&path);
    env.cleanup().await;
    dev.cleanup().await;
}

/// With a token configured and the development setting on, a plain-http
/// remote that asks for credentials does not get them: no request carries
/// an Authorization header, and the answer says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_never_sent_over_http() {
    let mut env = dev_env().await;
    env.config.git_username = Some("bob".to_owned());
    env.config.git_token = Some("s3cret-token".to_owned());
    let remote = CannedRemote::start(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned(),
    )
    .await;
    let url = format!("http://127.0.0.1:{}/team/flows.git", remote.port);
    for verb in ["pull", "push"] {
        let r = env
            .post_json(
                &format!("/api/git/{verb}"),
                json!({"remote": url, "branch": "main"}),
            )
            .await;
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(r.text().contains("only over https"), "{verb}: {}", r.text());
    }
    let requests = remote.requests();
    assert!(!requests.is_empty(), "the remote was never asked");
    for head in &requests {
        assert!(
            !head.to_ascii_lowercase().contains("authorization:"),
            "credentials went over http: {head}"
        );
    }
    env.cleanup().await;
}

/// A redirect to another host is not followed (so nothing, credentials
/// included, goes to a host the request did not name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_host_are_not_followed() {
    let env = dev_env().await;
    let elsewhere = CannedRemote::start(
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
    )
    .await;
    // `localhost` is another host name than the `127.0.0.1` requested.
    let redirecting = CannedRemote::start(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://localhost:{}/team/flows.git/info/refs?service=git-upload-pack\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        elsewhere.port
    ))
    .await;
    let url = format!("http://127.0.0.1:{}/team/flows.git", redirecting.port);
    let r = env
        .post_json("/api/git/pull", json!({"remote": url, "branch": "main"}))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("cannot redirect"), "{}", r.text());
    assert_eq!(redirecting.requests().len(), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect to another host was followed"
    );
    env.cleanup().await;
}

/// A fetch that would receive more than `RUNEFLOW_GIT_MAX_FETCH_BYTES` is
/// stopped, with a message naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_stop_at_the_size_limit() {
    let mut env = dev_env().await;
    env.config.git_max_fetch_bytes = 256 * 1024;
    // A remote holding 4 MiB that does not compress.
    let dir = std::env::temp_dir().join(format!("{}-big.git", env.name));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = git2::Repository::init_bare(&dir).unwrap();
    let mut index = git2::Index::new().unwrap();
    for i in 0..16 {
        let noise: Vec<u8> = (0..256 * 1024).map(|_| rand::random::<u8>()).collect();
        let id = repo.blob(&noise).unwrap();
        index
            .add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100_644,
                uid: 0,
                gid: 0,
                file_size: noise.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: format!("data/{i}.bin").into_bytes(),
            })
            .unwrap();
    }
    let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
    let who = git2::Signature::now("t", "t@localhost").unwrap();
    repo.commit(Some("refs/heads/main"), &who, &who, "big", &tree, &[])
        .unwrap();
    let r = env
        .post_json(
            "/api/git/pull",
            json!({"remote": dir.to_string_lossy(), "branch": "main"}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("more than 262144 bytes")
            && r.text().contains("RUNEFLOW_GIT_MAX_FETCH_BYTES"),
        "{}",
        r.text()
    );
    assert_eq!(env.get("/api/files").await.json()["files"], json!([]));
    // Under a higher limit the same pull goes through (data files are
    // refused by the workspace as non-UTF-8, which is not a transfer error).
    let env2 = {
        let mut e = dev_env().await;
        e.config.git_max_fetch_bytes = 64 * 1024 * 1024;
        e
    };
    let r = env2
        .post_json(
            "/api/git/pull",
            json!({"remote": dir.to_string_lossy(), "branch": "main"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
    env2.cleanup().await;
}

/// A remote that accepts and never answers ends the sync at the time
/// limit with a 504 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_remote_times_out() {
    let mut env = dev_env().await;
    env.config.git_timeout_secs = 2;
    let remote = StallingRemote::start().await;
    for verb in ["pull", "push"] {
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            env.post_json(
                &format!("/api/git/{verb}"),
                json!({"remote": remote.url, "branch": "main"}),
            ),
        )
        .await
        .expect("the sync ends");
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.error_code(), "upstream_timeout");
        assert!(
            r.text().contains("RUNEFLOW_GIT_TIMEOUT_SECS"),
            "{}",
            r.text()
        );
    }
    assert!(remote.accepted() >= 2);
    env.cleanup().await;
}

/// Several syncs stalled on a slow remote, more than the API's PostgreSQL
/// pool has connections, leave that pool to ordinary requests: file
/// writes and reads and execution listings all succeed while the syncs
/// wait. (The pool here has 3 connections and gives up on a request after
/// 2 s; six syncs are started, four run at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_remotes_do_not_starve_the_pool() {
    const SYNCS: usize = 6;
    let mut env = dev_env().await;
    env.config.git_timeout_secs = 20;
    let mut options = ConnectOptions::new(env.database_url.clone());
    options
        .max_connections(3)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(2))
        .sqlx_logging(false);
    let small_pool = Database::connect(options).await.unwrap();
    let workspace = Workspace::new(
        small_pool.clone(),
        Publisher::new(env.store().clone()),
        env.config.max_file_bytes,
    );
    let queue = runeflow_api::queue::JobQueue::new(env.store().connection(), &env.name);
    let state = AppState::new(workspace, queue, env.waiters(), TOKEN)
        .with_git(runeflow::commands::api::git_settings(&env.config));
    let app = runeflow_api::app(state);
    let call = |method: &str, uri: &str, body: Body| {
        let app = app.clone();
        let req = authed(method, uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
        }
    };

    let remote = StallingRemote::start().await;
    let mut syncs = Vec::new();
    for i in 0..SYNCS {
        let body = json!({"remote": remote.url, "branch": format!("b{i}")}).to_string();
        syncs.push(tokio::spawn(call(
            "POST",
            "/api/git/pull",
            Body::from(body),
        )));
    }
    // Wait until at least as many syncs as the pool has connections are
    // talking to the remote.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while remote.accepted() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} syncs reached the remote (the others found no free PostgreSQL connection?)",
            remote.accepted()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..5 {
        let (status, body) = call(
            "PUT",
            &format!("/api/files/lib/m{i}.py"),
            Body::from(format!("X = {i}\n")),
        )
        .await;
        assert!(
            status == 200 || status == 201,
            "PUT while syncs stall: {status} {body}"
        );
        let (status, body) = call("GET", &format!("/api/files/lib/m{i}.py"), Body::empty()).await;
        assert_eq!(status, 200, "GET while syncs stall: {body}");
        let (status, body) = call("GET", "/api/executions", Body::empty()).await;
        assert_eq!(status, 200, "listing while syncs stall: {body}");
    }
    assert!(
        syncs.iter().all(|s| !s.is_finished()),
        "the syncs were still stalled while the requests ran"
    );
    for sync in syncs {
        let (status, body) = tokio::time::timeout(Duration::from_secs(120), sync)
            .await
            .expect("every sync ends")
            .unwrap();
        // At the time limit, or refused for want of a free slot.
        assert!(status == 504 || status == 503, "{status} {body}");
    }
    small_pool.close().await.ok();
    env.cleanup().await;
}
