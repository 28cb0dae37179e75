//! Git sync through the API with local bare repositories: push from one
//! workspace, pull into another (identical files and workflows), conflicts
//! reported and resolved, a moved branch refused. Local paths are remotes
//! only with the development setting, which these tests turn on
//! ([`dev_env`]); `git_hygiene.rs` tests the rules about remotes.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{HttpServer, TOKEN, TestEnv};
use serde_json::{Value, json};

/// A test env whose API accepts local-path remotes
/// (`RUNEFLOW_GIT_ALLOW_INSECURE=true`).
async fn dev_env() -> TestEnv {
    let mut env = TestEnv::new().await;
    env.config.git_allow_insecure = true;
    env
}

fn bare_repo(env: &TestEnv) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("{}-remote.git", env.name));
    let _ = std::fs::remove_dir_all(&dir);
    git2::Repository::init_bare(&dir).expect("init bare repo");
    let url = dir.to_string_lossy().into_owned();
    (dir, url)
}

/// path → content of the branch's tree in the bare repository.
fn branch_files(dir: &PathBuf, branch: &str) -> BTreeMap<String, String> {
    let repo = git2::Repository::open_bare(dir).unwrap();
    let commit = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let mut files = BTreeMap::new();
    commit
        .tree()
        .unwrap()
        .walk(git2::TreeWalkMode::PreOrder, |folder, entry| {
            if let Some(blob) = entry.to_object(&repo).ok().and_then(|o| o.into_blob().ok()) {
                files.insert(
                    format!("{folder}{}", entry.name().unwrap()),
                    String::from_utf8_lossy(blob.content()).into_owned(),
                );
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
    files
}

async fn workspace_files(env: &TestEnv) -> BTreeMap<String, String> {
    let listing = env.get("/api/files?limit=1000").await.json();
    let mut files = BTreeMap::new();
    for f in listing["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        files.insert(
            path.to_owned(),
            env.get(&format!("/api/files/{path}")).await.text(),
        );
    }
    files
}

async fn workflows(env: &TestEnv) -> Vec<Value> {
    let mut list = env.get("/api/workflows").await.json()["workflows"]
        .as_array()
        .unwrap()
        .clone();
    for w in &mut list {
        w.as_object_mut().unwrap().remove("line");
    }
    list
}

fn actions(report: &Value) -> BTreeMap<String, String> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const FLOW: &str = "from runeflow import workflow\n\n@workflow(name='report', timeout=5)\ndef report(day: str = 'mon'):\n    \"\"\"Daily report.\"\"\"\n    return day\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_into_a_second_workspace_then_conflicts() {
    let a = dev_env().await;
    let b = dev_env().await;
    let (dir, remote) = bare_repo(&a);
    a.put_files(&[
        ("flows/report.py", FLOW),
        ("lib/__init__.py", ""),
        ("lib/util.py", "def f():\n    return 1\n"),
        ("lib/data.json", "{\"a\": 1}\n"),
    ])
    .await;

    let pushed = a
        .post_json(
            "/api/git/push",
            json!({"remote": remote, "branch": "main", "message": "first"}),
        )
        .await;
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    assert_eq!(pushed.json()["pushed"], true);
    assert_eq!(branch_files(&dir, "main"), workspace_files(&a).await);
    // Pushing an unchanged workspace pushes nothing.
    let again = a
        .post_json("/api/git/push", json!({"remote": remote, "branch": "main"}))
        .await
        .json();
    assert_eq!(again["pushed"], false, "{again}");
    assert_eq!(again["commit"], pushed.json()["commit"]);

    let pulled = b
        .post_json("/api/git/pull", json!({"remote": remote, "branch": "main"}))
        .await;
    assert_eq!(pulled.status, 200, "{}", pulled.text());
    let report = pulled.json();
    assert_eq!(report["conflicts"], 0);
    assert_eq!(
        actions(&report).values().filter(|a| *a == "added").count(),
        4
    );
    assert_eq!(workspace_files(&b).await, workspace_files(&a).await);
    assert_eq!(workflows(&b).await, workflows(&a).await);
    assert_eq!(workflows(&b).await[0]["name"], "report");

    // A changes util and data and deletes the json; B changes util too.
    a.put_files(&[
        ("lib/util.py", "def f():\n    return 2\n"),
        ("lib/new.py", "N = 1\n"),
    ])
    .await;
    a.delete("lib/data.json").await;
    a.post_json("/api/git/push", json!({"remote": remote, "branch": "main"}))
        .await;
    b.put_files(&[("lib/util.py", "def f():\n    return 3\n")])
        .await;

    // B's own push is refused: the branch moved since B synced.
    let refused = b
        .post_json("/api/git/push", json!({"remote": remote, "branch": "main"}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert_eq!(refused.error_code(), "branch_moved");

    let report = b
        .post_json("/api/git/pull", json!({"remote": remote, "branch": "main"}))
        .await
        .json();
    assert_eq!(report["conflicts"], 1, "{report}");
    assert_eq!(report["synced"], false);
    let done = actions(&report);
    assert_eq!(done["lib/util.py"], "conflict");
    assert_eq!(done["lib/new.py"], "added");
    assert_eq!(done["lib/data.json"], "deleted");
    // The conflicting file is untouched.
    assert_eq!(
        b.get("/api/files/lib/util.py").await.text(),
        "def f():\n    return 3\n"
    );
    assert_eq!(b.get("/api/files/lib/data.json").await.status, 404);

    // Resolved in favour of the remote.
    let report = b
        .post_json(
            "/api/git/pull",
            json!({"remote": remote, "branch": "main", "prefer": "theirs"}),
        )
        .await
        .json();
    assert_eq!(actions(&report)["lib/util.py"], "updated", "{report}");
    assert_eq!(report["synced"], true);
    assert_eq!(workspace_files(&b).await, workspace_files(&a).await);
    assert_eq!(branch_files(&dir, "main"), workspace_files(&b).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly() {
    let env = dev_env().await;
    let (dir, remote) = bare_repo(&env);
    let r = env
        .post_json("/api/git/pull", json!({"remote": remote, "branch": "main"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("no branch 'main'"), "{}", r.text());
    let r = env
        .post_json(
            "/api/git/push",
            json!({"remote": remote, "branch": "bad..name"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = env
        .post_json("/api/git/pull", json!({"remote": remote, "prefer": "mine"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let missing = std::env::temp_dir().join(format!("{}-absent.git", env.name));
    let r = env
        .post_json(
            "/api/git/push",
            json!({"remote": missing.to_string_lossy(), "branch": "main"}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Not a URL: the client's mistake, named (finding 9 of issue 9).
    let r = env
        .post_json("/api/git/pull", json!({"remote": "not a url"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_remote");
    assert!(r.text().contains("is not a URL"), "{}", r.text());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Syncs of one (remote, branch) wait for each other, across API
/// processes: a pull does not start while another holds the branch's lock
/// (held here from outside, as a second API process would), and finishes
/// once it is released. Another branch is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_of_one_branch_are_serialised() {
    use runeflow_api::git::lock::{LOCK_SQL, UNLOCK_SQL, lock_key};
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
    let env = dev_env().await;
    let (dir, remote) = bare_repo(&env);
    env.put_files(&[("lib/a.py", "A = 1\n")]).await;
    for branch in ["main", "other"] {
        let r = env
            .post_json("/api/git/push", json!({"remote": remote, "branch": branch}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let other_api = env.db.begin().await.unwrap();
    other_api
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            LOCK_SQL,
            [lock_key(&remote, "main").into()],
        ))
        .await
        .unwrap();
    let env = std::sync::Arc::new(env);
    let pull = {
        let (env, remote) = (env.clone(), remote.clone());
        tokio::spawn(async move {
            env.post_json("/api/git/pull", json!({"remote": remote, "branch": "main"}))
                .await
        })
    };
    let r = env
        .post_json(
            "/api/git/pull",
            json!({"remote": remote, "branch": "other"}),
        )
        .await;
    assert_eq!(r.status, 200, "another branch is not held: {}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !pull.is_finished(),
        "the pull ran while the branch was locked"
    );
    other_api
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            UNLOCK_SQL,
            [lock_key(&remote, "main").into()],
        ))
        .await
        .unwrap();
    other_api.commit().await.unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), pull)
        .await
        .expect("the pull goes on once the lock is released")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["synced"], true);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `runeflow git push|pull` through the binary (conflicts exit non-zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_cli_verbs() {
    let a = dev_env().await;
    let b = dev_env().await;
    let (dir, remote) = bare_repo(&a);
    let (sa, sb): (HttpServer, HttpServer) = (a.serve_http().await, b.serve_http().await);
    a.put_files(&[("x.py", "X = 1\n")]).await;
    let run = |server: &HttpServer, args: Vec<String>| {
        let url = server.url.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
                .args(args)
                .env("RUNEFLOW_URL", url)
                .env("RUNEFLOW_API_TOKEN", TOKEN)
                .output()
                .await
                .unwrap()
        }
    };
    let args = |verb: &str, extra: &[&str]| {
        let mut v = vec![
            "git".to_owned(),
            verb.to_owned(),
            "--remote".to_owned(),
            remote.clone(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let out = run(&sa, args("push", &["-m", "from a"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pushed 1 files"));
    b.put_files(&[("x.py", "X = 2\n")]).await;
    let out = run(&sb, args("pull", &[])).await;
    assert_eq!(out.status.code(), Some(1), "a conflict exits 1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("conflict x.py"));
    let out = run(&sb, args("pull", &["--prefer", "ours"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept x.py"));
    let repo = git2::Repository::open_bare(&dir).unwrap();
    let head = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert_eq!(head.message(), Some("from a"));
    let _ = std::fs::remove_dir_all(&dir);
}
