//! Execution bench (`cargo bench --bench executions`). Prints each figure
//! next to a baseline measured in the same run on this machine:
//!
//! 1. sequential latency of a no-op workflow importing one workspace module
//!    (POST with `wait` → result, p50/p90/p99 over 1 000 runs), next to a bare
//!    fork of a pre-imported python and `python3 -I -S -c pass`, and the
//!    median, p99.9 and maximum of queued → started over those runs (a job
//!    that waited for a poll or a heartbeat shows there);
//! 2. throughput of 3 000 no-op executions with 2 worker processes, next
//!    to the rate at which two processes can merely fork and reap children
//!    of the same pre-imported python (the ceiling of fork-per-execution);
//! 3. importing a package of 100 small modules from the workspace vs the
//!    same files on disk with `.pyc` present (ratio).
//!
//! Needs PostgreSQL and Redis (`RUNEFLOW_TEST_DATABASE_URL`,
//! `RUNEFLOW_TEST_REDIS_URL`); creates and drops its own database and uses
//! its own Redis prefix. Workers are the release `runeflow worker` binary.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runeflow_api::AppState;
use runeflow_api::queue::JobQueue;
use runeflow_api::waiters::Waiters;
use runeflow_shared::jobs::finished_channel;
use runeflow_shared::workspace::{Publisher, Workspace};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use support::BenchEnv;

const LATENCY_RUNS: usize = 1_000;
const THROUGHPUT_RUNS: usize = 3_000;
/// Forks made by [`python_fork_rate`]: two loops of 1 000.
const FORK_RATE_FORKS: usize = 2_000;
const IMPORT_MODULES: usize = 100;
const TOKEN: &str = "bench";

struct Bench {
    client: reqwest::Client,
    api: String,
    db: DatabaseConnection,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = BenchEnv::create(format!("rf_bench_exec_{}", std::process::id())).await?;
    let (name, database_url, redis_url) = (
        env.name.clone(),
        env.database_url.clone(),
        env.redis_url.clone(),
    );
    let (db, store) = (env.db.clone(), env.store.clone());
    let workspace = Workspace::new(db.clone(), Publisher::new(store.clone()), 8 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(
        workspace,
        JobQueue::new(store.connection(), &name),
        Waiters::spawn(redis_url.clone(), finished_channel(&name)),
        TOKEN,
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runeflow_api::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    let bench = Bench {
        client: reqwest::Client::new(),
        api: format!("http://{addr}"),
        db: db.clone(),
    };
    let mut workers: Vec<Child> = (0..2)
        .map(|_| start_worker(&database_url, &redis_url, &name))
        .collect::<Result<_, _>>()?;

    let pids: Vec<u32> = workers.iter().map(Child::id).collect();
    let result = run(&bench, &pids).await;

    for w in &mut workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
    }
    for w in &mut workers {
        let _ = w.wait();
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    env.remove().await?;
    result
}

fn start_worker(database_url: &str, redis_url: &str, prefix: &str) -> std::io::Result<Child> {
    let binary = std::env::var("RUNEFLOW_BENCH_WORKER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_runeflow").to_owned());
    Command::new(binary)
        .arg("worker")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", prefix)
        .env("RUNEFLOW_CONCURRENCY", "4")
        .env("RUNEFLOW_CHILD_USERS", "off")
        .env(
            "RUNEFLOW_PYTHON",
            real_python().unwrap_or_else(|_| "python3".to_owned()),
        )
        // RUNEFLOW_BENCH_WORKER_LOG=runeflow_worker::job=debug prints each
        // execution's phases (start, prepare, spawn, child, record, ...).
        .env(
            "RUST_LOG",
            std::env::var("RUNEFLOW_BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(Stdio::null())
        .spawn()
}

async fn run(b: &Bench, workers: &[u32]) -> anyhow::Result<()> {
    println!(
        "runeflow execution bench ({} cores, 2 worker processes x concurrency 4)",
        std::thread::available_parallelism()?.get()
    );
    b.put("bench_helpers/tiny.py", "VALUE = 1\n").await?;
    b.put(
        "bench_flows/noop.py",
        "from runeflow import workflow\nimport bench_helpers.tiny\n\n@workflow\ndef noop():\n    return bench_helpers.tiny.VALUE\n",
    )
    .await?;
    // Warm up both workers' zygotes and caches.
    for _ in 0..20 {
        b.execute("noop", json!({})).await?;
    }

    let only = |part: &str| std::env::args().any(|a| a == part);
    if !only("throughput") {
        latency(b).await?;
    }
    if only("latency") {
        return Ok(()); // `cargo bench --bench executions -- latency`: this part only
    }

    let cpu_before = support::cpu::sample(workers);
    let (rate, took) = throughput(b).await?;
    let cpu_after = support::cpu::sample(workers);
    println!(
        "throughput: {THROUGHPUT_RUNS} no-op executions in {:.2} s = {rate:.0} executions/s (goal >= 1000: {})",
        took.as_secs_f64(),
        met(rate >= 1000.0)
    );
    println!(
        "  {}",
        support::cpu::per_execution(&cpu_before, &cpu_after, THROUGHPUT_RUNS)
    );
    let machine = support::cpu::machine_seconds();
    let fork_rate = python_fork_rate()?;
    let fork_cpu = (support::cpu::machine_seconds() - machine) * 1000.0 / FORK_RATE_FORKS as f64;
    println!(
        "  ceiling: 2 parallel loops of bare fork+exit of a pre-imported python, nothing else: {fork_rate:.0}/s, {fork_cpu:.2} ms of CPU per fork+exit"
    );

    let (virtual_ms, disk_ms) = import_ratio(b).await?;
    println!(
        "import of a {IMPORT_MODULES}-module package: workspace {virtual_ms:.2} ms vs disk with .pyc {disk_ms:.2} ms -> ratio {:.2} (goal <= 1.0: {})",
        virtual_ms / disk_ms,
        met(virtual_ms / disk_ms <= 1.0)
    );
    Ok(())
}

/// Sequential no-op executions (POST with `wait`), with the baselines.
async fn latency(b: &Bench) -> anyhow::Result<()> {
    let earlier = b.count("SELECT count(*) FROM executions").await?;
    let mut latencies = Vec::with_capacity(LATENCY_RUNS);
    for _ in 0..LATENCY_RUNS {
        let started = Instant::now();
        let e = b.execute("noop", json!({})).await?;
        anyhow::ensure!(e["status"] == "success", "no-op failed: {e}");
        latencies.push(started.elapsed());
    }
    let fork = python_fork_latency()?;
    let cold = python_start_latency()?;
    println!(
        "no-op execution, enqueue+wait -> result ({LATENCY_RUNS} runs): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
        ms(pct(&mut latencies, 0.50)),
        ms(pct(&mut latencies, 0.90)),
        ms(pct(&mut latencies, 0.99))
    );
    println!(
        "  baseline: bare fork of a pre-imported python p50 {:.2} ms; python3 -I -S -c pass p50 {:.2} ms",
        ms(fork),
        ms(cold)
    );
    println!(
        "  goal p50 <= 5 ms: {}; goal p99 <= 20 ms: {}",
        met(pct(&mut latencies, 0.5) <= Duration::from_millis(5)),
        met(pct(&mut latencies, 0.99) <= Duration::from_millis(20))
    );

    println!("  split (over the runs above): {}", b.split(earlier).await?);
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

impl Bench {
    async fn put(&self, path: &str, content: &str) -> anyhow::Result<()> {
        let r = self
            .client
            .put(format!("{}/api/files/{path}", self.api))
            .bearer_auth(TOKEN)
            .body(content.to_owned())
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "PUT {path}: {}", r.status());
        Ok(())
    }

    async fn execute(&self, workflow: &str, parameters: Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}/api/executions", self.api))
            .bearer_auth(TOKEN)
            .json(&json!({"workflow": workflow, "parameters": parameters, "wait": 60}))
            .send()
            .await?;
        Ok(r.json().await?)
    }

    async fn enqueue(&self, workflow: &str) -> anyhow::Result<()> {
        let r = self
            .client
            .post(format!("{}/api/executions", self.api))
            .bearer_auth(TOKEN)
            .json(&json!({"workflow": workflow}))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 202, "enqueue: {}", r.status());
        Ok(())
    }

    /// Medians of queue→start, start→finish and the child's own duration,
    /// the p99.9 and maximum of queue→start and the maximum of
    /// start→finish, over the executions queued after the first `skip`,
    /// from the rows' timestamps.
    async fn split(&self, skip: i64) -> anyhow::Result<String> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "WITH runs AS (SELECT extract(epoch FROM started_at - queued_at) * 1000 AS queued, \
                                          extract(epoch FROM finished_at - started_at) * 1000 AS ran, \
                                          duration_ms::float8 AS child \
                                   FROM executions WHERE status = 'success' \
                                   ORDER BY queued_at OFFSET {skip}) \
                     SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY queued)::float8, \
                            percentile_cont(0.5) WITHIN GROUP (ORDER BY ran)::float8, \
                            percentile_cont(0.5) WITHIN GROUP (ORDER BY child)::float8, \
                            max(queued)::float8, max(ran)::float8, \
                            percentile_cont(0.999) WITHIN GROUP (ORDER BY queued)::float8, \
                            count(*) FILTER (WHERE queued > 50)::float8 \
                     FROM runs"
                ),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        let get = |i| row.try_get_by_index::<f64>(i).unwrap_or(f64::NAN);
        Ok(format!(
            "queue->start median {:.2} ms, p99.9 {:.1} ms, max {:.1} ms ({} over 50 ms); \
             start->finish median {:.2} ms (max {:.1}); child {:.0} ms (whole ms)",
            get(0),
            get(5),
            get(3),
            get(6),
            get(1),
            get(4),
            get(2)
        ))
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }
}

/// Enqueues THROUGHPUT_RUNS no-ops (32 requests in flight) and measures from
/// the first enqueue until the last one is recorded.
async fn throughput(b: &Bench) -> anyhow::Result<(f64, Duration)> {
    use futures::StreamExt;
    let before = b
        .count("SELECT count(*) FROM executions WHERE status <> 'pending' AND status <> 'running'")
        .await?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..THROUGHPUT_RUNS)
        .map(|_| b.enqueue("noop"))
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r?;
    }
    println!(
        "  enqueue of {THROUGHPUT_RUNS} took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let target = before + THROUGHPUT_RUNS as i64;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = b
            .count(
                "SELECT count(*) FROM executions WHERE status <> 'pending' AND status <> 'running'",
            )
            .await?;
        if done >= target {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {THROUGHPUT_RUNS} finished",
            done - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let failed = b
        .count("SELECT count(*) FROM executions WHERE status <> 'success'")
        .await?;
    anyhow::ensure!(failed == 0, "{failed} executions did not succeed");
    Ok((THROUGHPUT_RUNS as f64 / took.as_secs_f64(), took))
}

fn module_source(i: usize) -> String {
    format!(
        "\"\"\"Module {i}.\"\"\"\n\nVALUE = {i}\n\n\ndef double(x):\n    return 2 * x + VALUE\n\n\nclass Thing{i}:\n    def __init__(self):\n        self.value = VALUE\n"
    )
}

/// Median over 15 fresh processes of importing the 100-module package,
/// through the workspace and from disk with `.pyc` present.
async fn import_ratio(b: &Bench) -> anyhow::Result<(f64, f64)> {
    let mut init = String::new();
    for i in 0..IMPORT_MODULES {
        b.put(&format!("bigpkg/m{i}.py"), &module_source(i)).await?;
        init.push_str(&format!("from . import m{i}\n"));
    }
    b.put("bigpkg/__init__.py", &init).await?;
    b.put(
        "bench_flows/imports.py",
        "import time\nfrom runeflow import workflow\n\n@workflow\ndef import_bigpkg():\n    t = time.perf_counter()\n    import bigpkg\n    return (time.perf_counter() - t) * 1000\n",
    )
    .await?;
    let mut virtual_runs = Vec::new();
    for _ in 0..15 {
        let e = b.execute("import_bigpkg", json!({})).await?;
        anyhow::ensure!(e["status"] == "success", "import failed: {e}");
        virtual_runs.push(e["result"].as_f64().unwrap_or(f64::NAN));
    }
    let dir = std::env::temp_dir().join(format!("rf-bench-disk-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bigpkg"))?;
    for i in 0..IMPORT_MODULES {
        std::fs::write(dir.join(format!("bigpkg/m{i}.py")), module_source(i))?;
    }
    std::fs::write(dir.join("bigpkg/__init__.py"), init)?;
    let script = "import sys, time\nsys.path.insert(0, sys.argv[1])\nt = time.perf_counter()\nimport bigpkg\nprint((time.perf_counter() - t) * 1000)\n";
    let python = real_python()?;
    let mut disk_runs = Vec::new();
    for run in 0..16 {
        let out = Command::new(&python)
            .args(["-I", "-c", script])
            .arg(&dir)
            .output()?;
        anyhow::ensure!(out.status.success(), "disk import failed");
        if run > 0 {
            // The first run writes the .pyc files.
            disk_runs.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((median(virtual_runs), median(disk_runs)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// What the fork baselines import first: what the worker's zygote imports.
const ZYGOTE_LIKE: &str = "import os, time, json, asyncio, logging, traceback, gc\ngc.freeze()\n";

/// Runs `python -I -c` with [`ZYGOTE_LIKE`] then `script`, which prints one number.
fn python_figure(what: &str, script: &str) -> anyhow::Result<f64> {
    let out = Command::new(real_python()?)
        .args(["-I", "-c", &format!("{ZYGOTE_LIKE}{script}")])
        .output()?;
    anyhow::ensure!(out.status.success(), "{what} baseline failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// p50 of fork → child exits → parent reaps, in a python that imported
/// what the zygote imports.
fn python_fork_latency() -> anyhow::Result<Duration> {
    let script = "r = []\nfor _ in range(200):\n    t = time.perf_counter()\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n    r.append(time.perf_counter() - t)\nr.sort()\nprint(r[len(r)//2])\n";
    Ok(Duration::from_secs_f64(python_figure("fork", script)?))
}

/// Forks per second of two processes each forking and reaping a child
/// that exits at once, in a python that imported what the zygote imports:
/// what fork-per-execution alone costs on this machine, with no work done.
fn python_fork_rate() -> anyhow::Result<f64> {
    let script = "def loop(n):\n    for _ in range(n):\n        pid = os.fork()\n        if pid == 0:\n            os._exit(0)\n        os.waitpid(pid, 0)\nn = 1000\nt = time.perf_counter()\nother = os.fork()\nif other == 0:\n    loop(n)\n    os._exit(0)\nloop(n)\nos.waitpid(other, 0)\nprint(2 * n / (time.perf_counter() - t))\n";
    python_figure("fork-rate", script)
}

/// p50 of starting `python3 -I -S -c pass` (30 runs).
fn python_start_latency() -> anyhow::Result<Duration> {
    let python = real_python()?;
    let mut runs = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let status = Command::new(&python)
            .args(["-I", "-S", "-c", "pass"])
            .status()?;
        anyhow::ensure!(status.success());
        runs.push(t.elapsed());
    }
    Ok(pct(&mut runs, 0.5))
}

/// The interpreter `python3` really is (pyenv's shim is a shell script that
/// would add tens of milliseconds to every start).
fn real_python() -> anyhow::Result<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
