//! `runeflow import` through the real binary against the real PostgreSQL
//! and Redis: from a folder, `--dry-run` changing nothing, and from S3 (a
//! moto server started by the test on loopback).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestEnv;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// The size limit the imports run with (`RUNEFLOW_MAX_FILE_BYTES`).
const LIMIT: usize = 1024;

const WORKFLOW: &str = "from runeflow import workflow\n\n\
@workflow(name=\"imported_hello\", description=\"Say hi\")\n\
def hello(name: str = \"world\") -> str:\n    return f\"hi {name}\"\n";

/// Runs `runeflow import <args>` on this test's database and Redis prefix.
fn import(env: &TestEnv, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    import_with(env, &env.database_url, &env.redis_url, args, extra_env)
}

fn import_with(
    env: &TestEnv,
    database_url: &str,
    redis_url: &str,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runeflow"));
    cmd.arg("import")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", &env.name)
        .env("RUNEFLOW_MAX_FILE_BYTES", LIMIT.to_string())
        .env("RUST_LOG", "warn");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("run runeflow import")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, that the last line is `summary`, and that the other
/// lines are, in path order, exactly one per entry of `expected`, each
/// starting with its entry (so a refusal's reason is checked up to the
/// text given). Returns the output.
#[track_caller]
fn assert_report(o: &Output, expected: &[&str], summary: &str) -> String {
    let out = stdout(o);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        stderr(o)
    );
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.pop(), Some(summary), "summary of:\n{out}");
    assert_eq!(lines.len(), expected.len(), "one line per file:\n{out}");
    let paths: Vec<&str> = lines
        .iter()
        .map(|l| {
            let (_, rest) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            rest.split_once(": ").map_or(rest, |(path, _)| path)
        })
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "lines come in path order:\n{out}");
    // Longest expectation first, so `refused a` cannot take `refused ab`'s line.
    let mut want: Vec<&str> = expected.to_vec();
    want.sort_by_key(|w| std::cmp::Reverse(w.len()));
    let mut unused = lines.clone();
    for w in want {
        let Some(i) = unused.iter().position(|l| l.starts_with(w)) else {
            panic!("no line starts with {w:?}:\n{out}");
        };
        unused.remove(i);
    }
    out
}

/// A fresh folder under the system temp dir.
fn scratch(env: &TestEnv) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}_import", env.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(root: &Path, relative: impl AsRef<Path>, bytes: impl AsRef<[u8]>) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every row of the workspace tables plus the revision sequence, as text.
async fn sql_state(env: &TestEnv) -> Vec<String> {
    let mut state = Vec::new();
    for sql in [
        "SELECT row_to_json(f)::text FROM (SELECT * FROM workspace_files ORDER BY path) f",
        "SELECT row_to_json(w)::text FROM (SELECT * FROM workflows ORDER BY path, function_name) w",
        "SELECT last_value::text || ' ' || is_called::text FROM workspace_revision_seq",
    ] {
        let rows = env
            .db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
            .await
            .unwrap();
        state.extend(
            rows.iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap()),
        );
    }
    state
}

/// Every Redis key under the test's prefix with its serialised value.
async fn redis_state(env: &TestEnv) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut conn = env.store().connection();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", env.name))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut state = BTreeMap::new();
    for key in keys {
        let value: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        state.insert(key, value);
    }
    state
}

/// (path, entity_type) of every live file, via the API.
async fn listed(env: &TestEnv) -> Vec<(String, String)> {
    let r = env.get("/api/files?limit=1000").await;
    assert!(r.status.is_success(), "{}", r.text());
    r.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["entity_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The sha256 the module store indexes for `path`.
async fn indexed_hash(env: &TestEnv, path: &str) -> Option<String> {
    let mut conn = env.store().connection();
    redis::cmd("HGET")
        .arg(format!("{}:modules", env.name))
        .arg(path)
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn sha(bytes: &[u8]) -> String {
    runeflow_shared::hash::content_hash(bytes)
}

#[tokio::test]
async fn imports_a_folder_with_refusals_then_reports_unchanged() {
    let env = TestEnv::new().await;
    let dir = scratch(&env);
    write(&dir, "flows/hello.py", WORKFLOW);
    write(&dir, "helpers/__init__.py", "");
    write(
        &dir,
        "helpers/text/fmt.py",
        "def shout(s):\n    return s.upper()\n",
    );
    write(&dir, "data/config.json", "{\"retries\": 3}\n");
    write(&dir, "bin/blob.dat", b"ok\xff\xfe\x00");
    write(&dir, "big.txt", "a".repeat(LIMIT + 976));
    write(&dir, "bad\\name.py", "X = 1\n");
    write(&dir, OsStr::from_bytes(b"caf\xe9.py"), "X = 2\n");
    std::os::unix::fs::symlink(dir.join("flows"), dir.join("flows_link")).unwrap();
    // Never imported: bytecode caches, .pyc files, git's data.
    write(&dir, "helpers/__pycache__/fmt.cpython-312.pyc", b"\x00\x01");
    write(&dir, "helpers/__pycache__/notes.txt", "cache");
    write(&dir, "helpers/stale.pyc", b"\x00\x01");
    write(&dir, ".git/HEAD", "ref: refs/heads/main\n");
    write(&dir, "vendor/lib/.git", "gitdir: ../../.git/modules/lib\n");
    let folder = dir.to_str().unwrap();

    let created = [
        "created team/data/config.json",
        "created team/flows/hello.py",
        "created team/helpers/__init__.py",
        "created team/helpers/text/fmt.py",
    ];
    let refused = [
        "refused team/bad\\name.py: invalid path (backslash)",
        "refused team/big.txt: file is 2000 bytes, the limit is 1024",
        "refused team/bin/blob.dat: content is not valid UTF-8 text (byte 2 starts an invalid sequence)",
        "refused team/caf\u{FFFD}.py: invalid path (not_utf8)",
        "refused team/flows_link: symbolic link to a folder (not followed)",
    ];
    let first = import(&env, &[folder, "--prefix", "team"], &[]);
    let expected: Vec<&str> = created.iter().chain(&refused).copied().collect();
    assert_report(
        &first,
        &expected,
        "4 created, 0 updated, 0 unchanged, 5 refused",
    );

    // The rows landed with their entity types; nothing refused or skipped did.
    assert_eq!(
        listed(&env).await,
        [
            ("team/data/config.json", "file"),
            ("team/flows/hello.py", "workflow"),
            ("team/helpers/__init__.py", "module"),
            ("team/helpers/text/fmt.py", "module"),
        ]
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
    );
    assert_eq!(
        env.count("SELECT count(*) FROM workspace_files").await,
        4,
        "no row for a refused or skipped file"
    );
    let hello = env.get("/api/files/team/flows/hello.py").await;
    assert_eq!(hello.text(), WORKFLOW);
    let flow = env.get("/api/workflows/imported_hello").await;
    assert!(flow.status.is_success(), "{}", flow.text());
    assert_eq!(flow.json()["path"], "team/flows/hello.py");
    assert_eq!(flow.json()["kind"], "workflow");
    // ...and went through the module store like an API write.
    assert_eq!(
        indexed_hash(&env, "team/helpers/text/fmt.py").await,
        Some(sha(b"def shout(s):\n    return s.upper()\n"))
    );

    // The same source again: everything unchanged, not one row touched.
    let before = sql_state(&env).await;
    let second = import(&env, &[folder, "--prefix", "team/"], &[]);
    let unchanged: Vec<String> = created
        .iter()
        .map(|l| l.replacen("created", "unchanged", 1))
        .collect();
    let expected: Vec<&str> = unchanged
        .iter()
        .map(String::as_str)
        .chain(refused.iter().copied())
        .collect();
    assert_report(
        &second,
        &expected,
        "0 created, 0 updated, 4 unchanged, 5 refused",
    );
    assert_eq!(sql_state(&env).await, before);

    // One file changed on disk: only it is updated.
    write(
        &dir,
        "helpers/text/fmt.py",
        "def shout(s):\n    return s.upper() + '!'\n",
    );
    let third = import(&env, &[folder, "--prefix", "team"], &[]);
    let out = assert_report(
        &third,
        &[
            "unchanged team/data/config.json",
            "unchanged team/flows/hello.py",
            "unchanged team/helpers/__init__.py",
            "updated team/helpers/text/fmt.py",
            "refused team/bad\\name.py",
            "refused team/big.txt",
            "refused team/bin/blob.dat",
            "refused team/caf",
            "refused team/flows_link",
        ],
        "0 created, 1 updated, 3 unchanged, 5 refused",
    );
    assert!(out.contains("updated team/helpers/text/fmt.py\n"), "{out}");
    assert_eq!(
        env.get("/api/files/team/helpers/text/fmt.py").await.text(),
        "def shout(s):\n    return s.upper() + '!'\n"
    );

    // Fatal errors: a missing folder, an unreachable PostgreSQL.
    let missing = dir.join("no-such-folder");
    let out = import(&env, &[missing.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let dead = common::free_port();
    let out = import_with(
        &env,
        &format!("postgres://postgres@127.0.0.1:{dead}/x"),
        &env.redis_url,
        &[folder],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PostgreSQL is unreachable"),
        "{}",
        stderr(&out)
    );

    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}

#[tokio::test]
async fn dry_run_reports_exactly_what_the_import_does_and_changes_nothing() {
    let env = TestEnv::new().await;
    env.put_files(&[
        ("keep.py", "X = 1\n"),
        ("change.py", "X = 1\n"),
        ("elsewhere.txt", "not in the folder\n"),
    ])
    .await;
    let dir = scratch(&env);
    write(&dir, "keep.py", "X = 1\n");
    write(&dir, "change.py", "X = 2\n");
    write(&dir, "pkg/flow.py", WORKFLOW);
    write(&dir, "pkg/notes.md", "# notes\n");
    write(&dir, "pkg/bin.dat", b"\xc3\x28");
    // Valid UTF-8 that PostgreSQL's text type refuses.
    write(&dir, "pkg/nul.txt", b"a\x00b");
    write(&dir, "big.txt", "b".repeat(LIMIT + 1));
    write(&dir, "pkg/__pycache__/flow.cpython-312.pyc", b"\x00");
    let folder = dir.to_str().unwrap();
    let expected = [
        "created pkg/flow.py",
        "created pkg/notes.md",
        "updated change.py",
        "unchanged keep.py",
        "refused big.txt: file is 1025 bytes, the limit is 1024",
        "refused pkg/bin.dat: content is not valid UTF-8 text (byte 0 starts an invalid sequence)",
        "refused pkg/nul.txt: content has a NUL byte at offset 1; workspace files are text without NUL",
    ];
    let summary = "2 created, 1 updated, 1 unchanged, 3 refused";

    let sql_before = sql_state(&env).await;
    let redis_before = redis_state(&env).await;
    assert!(!redis_before.is_empty(), "the seeded files are in Redis");
    let dry = import(&env, &[folder, "--dry-run"], &[]);
    let dry_out = assert_report(&dry, &expected, summary);
    assert!(stderr(&dry).contains("dry run"), "{}", stderr(&dry));
    assert_eq!(sql_state(&env).await, sql_before, "PostgreSQL untouched");
    assert_eq!(redis_state(&env).await, redis_before, "Redis untouched");
    assert_eq!(
        env.count("SELECT count(*) FROM audit_log WHERE action = 'workspace.import'")
            .await,
        0,
        "a dry run is not audited"
    );

    // The real import does what the dry run said, line for line.
    let real = import(&env, &[folder], &[]);
    let real_out = stdout(&real);
    assert_eq!(real_out, dry_out);
    assert!(real.status.success(), "{}", stderr(&real));
    assert_ne!(sql_state(&env).await, sql_before);
    // The import acted on PostgreSQL directly: one audit row says so.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM audit_log WHERE actor = 'cli' \
             AND action = 'workspace.import' AND outcome = 'ok' AND target LIKE '% -> /%'"
        )
        .await,
        1
    );
    assert_eq!(env.get("/api/files/change.py").await.text(), "X = 2\n");
    assert_eq!(
        listed(&env).await,
        [
            ("change.py", "module"),
            ("elsewhere.txt", "file"),
            ("keep.py", "module"),
            ("pkg/flow.py", "workflow"),
            ("pkg/notes.md", "file"),
        ]
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
    );
    assert_eq!(
        indexed_hash(&env, "pkg/flow.py").await,
        Some(sha(WORKFLOW.as_bytes()))
    );

    // Now a dry run finds everything unchanged, and still touches nothing.
    let sql_before = sql_state(&env).await;
    let redis_before = redis_state(&env).await;
    let again = import(&env, &[folder, "--dry-run"], &[]);
    assert_report(
        &again,
        &[
            "unchanged change.py",
            "unchanged keep.py",
            "unchanged pkg/flow.py",
            "unchanged pkg/notes.md",
            "refused big.txt",
            "refused pkg/bin.dat",
            "refused pkg/nul.txt",
        ],
        "0 created, 0 updated, 4 unchanged, 3 refused",
    );
    assert_eq!(sql_state(&env).await, sql_before);
    assert_eq!(redis_state(&env).await, redis_before);

    std::fs::remove_dir_all(&dir).ok();
    env.cleanup().await;
}

/// A moto S3 server on loopback, killed on drop; its request log (werkzeug
/// writes one line per request to stderr) is kept in a file.
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Moto {
    fn start(log: PathBuf) -> Moto {
        let port = common::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let mut moto = Moto { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited with {status}: {}", moto.requests());
            }
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Plain unsigned path-style PUT (moto accepts them).
    async fn put(&self, http: &reqwest::Client, path: &str, body: Vec<u8>) {
        let r = http
            .put(format!("{}/{path}", self.endpoint()))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn imports_from_s3_with_dry_run_first() {
    let env = TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("{}_moto.log", env.name));
    let moto = Moto::start(log.clone());
    let http = reqwest::Client::new();
    let bucket = "rf-import";
    moto.put(&http, bucket, Vec::new()).await;
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("ws/src/flows/hello.py", WORKFLOW.into()),
        (
            "ws/src/lib/util.py",
            b"def twice(x):\n    return 2 * x\n".to_vec(),
        ),
        ("ws/src/lib/deep/er/table.csv", b"a,b\n1,2\n".to_vec()),
        ("ws/src/lib/", Vec::new()), // a console-made folder marker
        ("ws/src/blob.dat", b"\x80abc".to_vec()),
        ("ws/src/big.txt", vec![b'z'; LIMIT * 3]),
        ("ws/src/bad%5Cname.py", b"X = 1\n".to_vec()),
        (
            "ws/src/lib/__pycache__/util.cpython-312.pyc",
            b"\x00".to_vec(),
        ),
        ("ws/src/lib/old.pyc", b"\x00".to_vec()),
        ("ws/srcother/not_me.py", b"X = 3\n".to_vec()), // shares the text prefix only
        ("elsewhere/not_me.py", b"X = 4\n".to_vec()),
    ];
    for (key, body) in objects {
        moto.put(&http, &format!("{bucket}/{key}"), body).await;
    }
    let source = format!("s3://{bucket}/ws/src/");
    let endpoint = moto.endpoint();
    let aws = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let args = [
        source.as_str(),
        "--prefix",
        "imported",
        "--s3-endpoint",
        endpoint.as_str(),
    ];
    let expected = [
        "created imported/flows/hello.py",
        "created imported/lib/deep/er/table.csv",
        "created imported/lib/util.py",
        "refused imported/bad\\name.py: invalid path (backslash)",
        "refused imported/big.txt: file is 3072 bytes, the limit is 1024",
        "refused imported/blob.dat: content is not valid UTF-8 text (byte 0 starts an invalid sequence)",
    ];
    let summary = "3 created, 0 updated, 0 unchanged, 3 refused";

    // Dry run first: the report, and not a byte changed anywhere.
    let sql_before = sql_state(&env).await;
    let redis_before = redis_state(&env).await;
    let mut dry_args = args.to_vec();
    dry_args.push("--dry-run");
    let dry = import(&env, &dry_args, &aws);
    let dry_out = assert_report(&dry, &expected, summary);
    assert_eq!(sql_state(&env).await, sql_before);
    assert_eq!(redis_state(&env).await, redis_before);

    // The real import: the same lines, and the rows.
    let real = import(&env, &args, &aws);
    assert!(real.status.success(), "{}", stderr(&real));
    assert_eq!(stdout(&real), dry_out);
    assert_eq!(
        listed(&env).await,
        [
            ("imported/flows/hello.py", "workflow"),
            ("imported/lib/deep/er/table.csv", "file"),
            ("imported/lib/util.py", "module"),
        ]
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
    );
    assert_eq!(
        env.get("/api/files/imported/lib/util.py").await.text(),
        "def twice(x):\n    return 2 * x\n"
    );
    let flow = env.get("/api/workflows/imported_hello").await;
    assert_eq!(flow.json()["path"], "imported/flows/hello.py");
    assert_eq!(
        indexed_hash(&env, "imported/flows/hello.py").await,
        Some(sha(WORKFLOW.as_bytes()))
    );

    // Again: all unchanged, nothing touched.
    let before = sql_state(&env).await;
    let again = import(&env, &args, &aws);
    assert_report(
        &again,
        &[
            "unchanged imported/flows/hello.py",
            "unchanged imported/lib/deep/er/table.csv",
            "unchanged imported/lib/util.py",
            "refused imported/bad\\name.py",
            "refused imported/big.txt",
            "refused imported/blob.dat",
        ],
        "0 created, 0 updated, 3 unchanged, 3 refused",
    );
    assert_eq!(sql_state(&env).await, before);

    // Three imports, and the oversized object was never downloaded; the
    // others were (so the log does show GETs of objects).
    let requests = moto.requests();
    assert!(
        requests.contains("GET /rf-import/ws/src/lib/util.py"),
        "{requests}"
    );
    assert!(
        !requests.contains("GET /rf-import/ws/src/big.txt"),
        "{requests}"
    );

    // An S3 endpoint nobody listens on is a fatal error naming the source.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let out = import(&env, &[source.as_str(), "--s3-endpoint", &dead], &aws);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&source), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    drop(moto);
    std::fs::remove_file(&log).ok();
    env.cleanup().await;
}
