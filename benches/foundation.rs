//! Foundation bench (`cargo bench --bench foundation`): each figure is
//! printed next to a baseline measured in the same run on the same services.
//!
//! 1. 1 000 small-file PUTs through the HTTP API vs the same rows upserted
//!    straight through the same PostgreSQL pool.
//! 2. `init` warming 10 000 modules vs one raw pipelined Redis write of the
//!    same bytes (blob SET + index HSET per file).
//!
//! Needs PostgreSQL and Redis (`RUNEFLOW_TEST_DATABASE_URL`,
//! `RUNEFLOW_TEST_REDIS_URL`, defaults on 127.0.0.1); it creates and drops a
//! database of its own and uses its own Redis key prefix.

mod support;

use std::time::{Duration, Instant};

use support::BenchEnv;

use runeflow_api::AppState;
use runeflow_shared::hash::content_hash;
use runeflow_shared::store::ModuleStore;
use runeflow_shared::workspace::{Publisher, Workspace, rebuild};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const PUTS: usize = 1_000;
const MODULES: usize = 10_000;

fn module_source(i: usize) -> String {
    format!(
        "\"\"\"Module {i}.\"\"\"\n\nVALUE = {i}\n\n\ndef double(x: int) -> int:\n    return 2 * x + VALUE\n"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = BenchEnv::create(format!("rf_bench_{}", std::process::id())).await?;
    let result = run(&env.db, &env.store).await;
    env.remove().await?;
    result
}

async fn run(db: &DatabaseConnection, store: &ModuleStore) -> anyhow::Result<()> {
    println!(
        "runeflow foundation bench ({} cores)",
        std::thread::available_parallelism()?.get()
    );
    let (api, raw) = bench_puts(db, store).await?;
    report(
        &format!("{PUTS} PUTs via HTTP API"),
        api,
        &format!("{PUTS} upserts via pool"),
        raw,
    );
    truncate(db).await?;
    let (init, pipe) = bench_warm(db, store).await?;
    report(
        &format!("init warming {MODULES} modules"),
        init,
        &format!("raw pipeline of {MODULES}"),
        pipe,
    );
    for (label, source, workflows) in [typical_source(), dense_source()] {
        let (detect, ast, raw) = bench_detection(&source, workflows)?;
        let what = format!("detection, {label} 4 MB file");
        report(&what, detect, "python3 ast.parse of it", ast);
        report(&what, detect, "one tree-sitter parse of it", raw);
    }
    println!(
        "goal: init of {MODULES} modules <= 2000 ms -> {}",
        if init <= Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn report(what: &str, took: Duration, baseline: &str, base: Duration) {
    println!(
        "{what:<34} {:>9.1} ms | baseline {baseline:<26} {:>9.1} ms | ratio {:>5.2}",
        took.as_secs_f64() * 1e3,
        base.as_secs_f64() * 1e3,
        took.as_secs_f64() / base.as_secs_f64()
    );
}

async fn bench_puts(
    db: &DatabaseConnection,
    store: &ModuleStore,
) -> anyhow::Result<(Duration, Duration)> {
    let workspace = Workspace::new(db.clone(), Publisher::new(store.clone()), 8 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let queue = runeflow_api::queue::JobQueue::new(store.connection(), store.prefix());
    let waiters = runeflow_api::waiters::Waiters::spawn(
        support::env_or("RUNEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        runeflow_shared::jobs::finished_channel(store.prefix()),
    );
    let server = tokio::spawn(runeflow_api::serve(
        listener,
        AppState::new(workspace, queue, waiters, "bench"),
        async {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..PUTS {
        let resp = client
            .put(format!("http://{addr}/api/files/bench/api/m{i}.py"))
            .bearer_auth("bench")
            .body(module_source(i))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "PUT failed: {}", resp.status());
    }
    let api = started.elapsed();
    let _ = stop_tx.send(());
    server.await??;

    let started = Instant::now();
    for i in 0..PUTS {
        let content = module_source(i);
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO workspace_files (path, content, content_hash, entity_type, size) \
             VALUES ($1, $2, $3, 'module', $4) ON CONFLICT (path) DO UPDATE SET \
             content = EXCLUDED.content, content_hash = EXCLUDED.content_hash, size = EXCLUDED.size",
            [
                format!("bench/raw/m{i}.py").into(),
                content.clone().into(),
                content_hash(content.as_bytes()).into(),
                (content.len() as i64).into(),
            ],
        ))
        .await?;
    }
    Ok((api, started.elapsed()))
}

async fn bench_warm(
    db: &DatabaseConnection,
    store: &ModuleStore,
) -> anyhow::Result<(Duration, Duration)> {
    let files: Vec<(String, String, String)> = (0..MODULES)
        .map(|i| {
            let content = module_source(i);
            (
                format!("pkg{}/m{i}.py", i % 50),
                content_hash(content.as_bytes()),
                content,
            )
        })
        .collect();
    for chunk in files.chunks(1000) {
        let mut sql = String::from(
            "INSERT INTO workspace_files (path, content, content_hash, entity_type, size) VALUES ",
        );
        let mut values = Vec::new();
        for (n, (path, hash, content)) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            let b = n * 4;
            sql.push_str(&format!(
                "(${}, ${}, ${}, 'module', ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4
            ));
            values.extend([
                path.clone().into(),
                content.clone().into(),
                hash.clone().into(),
                (content.len() as i64).into(),
            ]);
        }
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    }
    support::clear_prefix(store, store.prefix()).await;
    let started = Instant::now();
    let report = rebuild(store, db).await?;
    let init = started.elapsed();
    anyhow::ensure!(
        report.files as usize == MODULES,
        "warmed {} files",
        report.files
    );

    support::clear_prefix(store, store.prefix()).await;
    let mut conn = store.connection();
    let started = Instant::now();
    let mut pipe = redis::pipe();
    for (path, hash, content) in &files {
        // The layout DESIGN.md documents, written by hand for the baseline.
        pipe.cmd("SET")
            .arg(format!("{}:blob:{hash}", store.prefix()))
            .arg(content)
            .ignore();
        pipe.cmd("HSET")
            .arg(format!("{}:modules", store.prefix()))
            .arg(path)
            .arg(hash)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await?;
    Ok((init, started.elapsed()))
}

async fn truncate(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("TRUNCATE workspace_files CASCADE")
        .await?;
    Ok(())
}

/// A typical big module: helpers with docstrings and comments (mentioning
/// `@workflow`, which must not count), one workflow per 5 000 functions.
fn typical_source() -> (&'static str, String, usize) {
    let mut source = String::from("import runeflow\n\n");
    let (mut i, mut workflows) = (0, 0);
    while source.len() < 4 * 1024 * 1024 {
        if i % 5000 == 2500 {
            workflows += 1;
            source.push_str(&format!(
                "@runeflow.workflow(name='wf {i}', timeout={i})\nasync def wf_{i}(n: int = {i}, *, tag: str = 'x'):\n    \"\"\"Workflow {i}.\"\"\"\n    return n\n\n\n"
            ));
        } else {
            source.push_str(&format!(
                "def helper_{i}(a: int, b: str = \"x{i}\", *rest) -> int:\n    \"\"\"Doc {i}: @workflow in a docstring.\"\"\"\n    # @workflow in a comment\n    values = [a, {i}, {{'k': (b, None)}}]\n    return len(values) + a\n\n\n"
            ));
        }
        i += 1;
    }
    ("typical", source, workflows)
}

/// The worst case we know: every function a decorated workflow with typed
/// parameters and defaults (about 27 000 of them).
fn dense_source() -> (&'static str, String, usize) {
    let mut source = String::from("from runeflow import workflow\n\n");
    let mut i = 0;
    while source.len() < 4 * 1024 * 1024 {
        source.push_str(&format!(
            "@workflow(name=\"w{i}\", timeout=5)\ndef w{i}(a: int, b: str = \"x\", *, c: list[int] = [1, 2]):\n    \"\"\"Doc {i}.\"\"\"\n    return {{\"a\": a, \"b\": b, \"c\": c}}\n\n\n"
        ));
        i += 1;
    }
    ("dense", source, i)
}

/// tree-sitter detection of a ~4 MB valid source vs CPython's own parser
/// (`ast.parse`, timed inside python3) and one plain single-threaded
/// tree-sitter parse of the same text.
fn bench_detection(source: &str, i: usize) -> anyhow::Result<(Duration, Duration, Duration)> {
    let started = Instant::now();
    let analysis = runeflow_shared::detect::analyze_python(source);
    let detect = started.elapsed();
    anyhow::ensure!(
        analysis.workflows.len() == i,
        "found {} of {i} workflows",
        analysis.workflows.len()
    );
    let path = std::env::temp_dir().join(format!("rf-bench-{}.py", std::process::id()));
    std::fs::write(&path, source)?;
    let out = std::process::Command::new("python3")
        .args(["-c", "import ast, sys, time; s = open(sys.argv[1]).read(); t = time.perf_counter(); ast.parse(s); print(time.perf_counter() - t)"])
        .arg(&path)
        .output()?;
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(out.status.success(), "python3 ast.parse failed");
    let ast = Duration::from_secs_f64(String::from_utf8_lossy(&out.stdout).trim().parse()?);
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&tree_sitter_python::LANGUAGE.into())?;
    let started = Instant::now();
    let tree = parser.parse(source, None);
    let raw = started.elapsed();
    anyhow::ensure!(
        tree.is_some_and(|t| !t.root_node().has_error()),
        "tree-sitter failed"
    );
    Ok((detect, ast, raw))
}
