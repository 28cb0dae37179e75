//! Schedules on real PostgreSQL and Redis: decorator schedules follow their
//! file, API schedules are created, listed and deleted with their errors,
//! two `runeflow api` processes enqueue exactly one execution per tick, and
//! an outage's missed ticks run once (or not at all without catch-up).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use common::{TOKEN, TestEnv, authed};
use runeflow_api::AppState;
use serde_json::{Value, json};

const NIGHTLY: &str = r#"from runeflow import workflow

@workflow(schedule="0 9 * * *", timezone="Europe/Paris")
def nightly():
    return 1
"#;

const GREET: &str = r#"from runeflow import workflow

@workflow
def greet(name: str):
    return "hi " + name
"#;

async fn schedules(env: &TestEnv) -> Vec<Value> {
    let r = env.get("/api/schedules").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().cloned().expect("an array")
}

async fn delete_schedule(env: &TestEnv, id: &str) -> common::Reply {
    env.call(
        authed("DELETE", &format!("/api/schedules/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// An API state of its own, as a second API process would have.
fn api_state(env: &TestEnv) -> AppState {
    let queue = runeflow_api::queue::JobQueue::new(env.store().connection(), &env.name);
    AppState::new(env.workspace.clone(), queue, env.waiters(), TOKEN)
}

#[tokio::test]
async fn a_decorator_schedule_follows_its_file() {
    let env = TestEnv::new().await;
    assert_eq!(schedules(&env).await, Vec::<Value>::new());
    let r = env.put("flows/nightly.py", NIGHTLY).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let listed = schedules(&env).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let s = &listed[0];
    assert_eq!(s["source"], "decorator");
    assert_eq!(s["source_path"], "flows/nightly.py");
    assert_eq!(s["workflow"], "nightly");
    assert_eq!(s["cron"], "0 9 * * *");
    assert_eq!(s["timezone"], "Europe/Paris");
    assert_eq!(s["catch_up"], true);
    assert_eq!(s["next_runs"].as_array().map(Vec::len), Some(3));
    let id = s["id"].as_str().expect("id").to_owned();

    // A decorator schedule is deleted by editing its file, not over the API.
    let r = delete_schedule(&env, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.error_code(), "decorator_schedule");

    // An edit updates the same schedule in place.
    let edited = NIGHTLY.replace(
        "schedule=\"0 9 * * *\", timezone=\"Europe/Paris\"",
        "schedule=\"*/5 * * * *\", catch_up=False",
    );
    let r = env.put("flows/nightly.py", edited.as_str()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = env.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["cron"], "*/5 * * * *");
    assert_eq!(r.json()["timezone"], "UTC");
    assert_eq!(r.json()["catch_up"], false);

    // A move drops the old schedule and makes one under the new path.
    let r = env
        .post_json(
            "/api/files/move",
            json!({"from": "flows/nightly.py", "to": "jobs/nightly.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let listed = schedules(&env).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["source_path"], "jobs/nightly.py");
    assert_eq!(listed[0]["cron"], "*/5 * * * *");
    assert_ne!(listed[0]["id"], id.as_str());
    let r = env.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    // Removing the schedule from the decorator drops it; so does a delete.
    let r = env
        .put(
            "jobs/nightly.py",
            GREET.replace("greet", "nightly").as_str(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(schedules(&env).await, Vec::<Value>::new());
    let r = env.put("jobs/nightly.py", NIGHTLY).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(schedules(&env).await.len(), 1);
    let r = env.delete("jobs/nightly.py").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(schedules(&env).await, Vec::<Value>::new());
    assert_eq!(env.count("SELECT count(*) FROM schedules").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn api_schedules_are_created_listed_and_deleted() {
    let env = TestEnv::new().await;
    let r = env.put("flows/greet.py", GREET).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let bad_cron = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "greet", "cron": "61 * * * *", "parameters": {"name": "a"}}),
        )
        .await;
    assert_eq!(
        bad_cron.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_cron.text()
    );
    assert_eq!(bad_cron.error_code(), "invalid_schedule");
    assert!(
        bad_cron.text().contains("61 * * * *"),
        "{}",
        bad_cron.text()
    );
    let bad_zone = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "greet", "cron": "0 9 * * *", "timezone": "Mars/Olympus", "parameters": {"name": "a"}}),
        )
        .await;
    assert_eq!(
        bad_zone.status,
        StatusCode::BAD_REQUEST,
        "{}",
        bad_zone.text()
    );
    assert!(
        bad_zone.text().contains("Mars/Olympus"),
        "{}",
        bad_zone.text()
    );
    let unknown = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "nope", "cron": "0 9 * * *"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    let missing = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "greet", "cron": "0 9 * * *"}),
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        missing.text()
    );
    assert!(missing.text().contains("name"), "{}", missing.text());
    assert_eq!(env.count("SELECT count(*) FROM schedules").await, 0);

    let r = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "greet", "cron": "0 9 * * 1-5", "timezone": "Asia/Tokyo",
                   "parameters": {"name": "Ada"}, "catch_up": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    assert_eq!(created["source"], "api");
    assert_eq!(created["parameters"], json!({"name": "Ada"}));
    assert_eq!(created["catch_up"], false);
    let runs: Vec<chrono::DateTime<chrono::Utc>> =
        serde_json::from_value(created["next_runs"].clone()).expect("times");
    assert_eq!(runs.len(), 3);
    for run in &runs {
        // 09:00 in Tokyo is 00:00 UTC.
        assert_eq!(run.format("%H:%M:%S").to_string(), "00:00:00", "{runs:?}");
    }
    let id = created["id"].as_str().expect("id").to_owned();

    let listed = schedules(&env).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    let r = env.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["workflow"], "greet");

    let r = delete_schedule(&env, &id).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = delete_schedule(&env, &id).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = env.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = env.get("/api/schedules/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(schedules(&env).await, Vec::<Value>::new());
    env.cleanup().await;
}

/// Creates an API schedule of `greet` and returns its id.
async fn scheduled(env: &TestEnv, cron: &str, catch_up: bool) -> String {
    let r = env.put("flows/greet.py", GREET).await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = env
        .post_json(
            "/api/schedules",
            json!({"workflow": "greet", "cron": cron, "parameters": {"name": "tick"},
                   "catch_up": catch_up}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_owned()
}

async fn executions_of(env: &TestEnv, id: &str) -> i64 {
    env.count(&format!(
        "SELECT count(*) FROM executions WHERE schedule_tick LIKE '{id}@%'"
    ))
    .await
}

#[tokio::test]
async fn missed_ticks_run_once_with_catch_up_and_not_at_all_without() {
    let env = TestEnv::new().await;
    // Per-minute schedules: 60 missed ticks each, and (away from a minute
    // boundary) no on-time tick, so the counts below are exact.
    let with = scheduled(&env, "0 * * * * *", true).await;
    let without = scheduled(&env, "0 * * * * *", false).await;
    // And a one-second schedule: 3 600 missed ticks.
    let dense = scheduled(&env, "* * * * * *", true).await;
    env.count(&format!(
        "WITH moved AS (UPDATE schedules SET last_tick = now() - interval '1 hour' \
         WHERE id IN ('{with}', '{without}', '{dense}') RETURNING 1) SELECT count(*) FROM moved"
    ))
    .await;
    let second = chrono::Utc::now().timestamp() % 60;
    if !(3..=55).contains(&second) {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    // Two "processes" run a pass at the same moment, then one more pass.
    let (a, b) = (api_state(&env), api_state(&env));
    let (ra, rb) = tokio::join!(
        runeflow_api::scheduler::pass(&a),
        runeflow_api::scheduler::pass(&b)
    );
    ra.expect("pass a");
    rb.expect("pass b");
    runeflow_api::scheduler::pass(&a).await.expect("pass");

    assert_eq!(executions_of(&env, &with).await, 1);
    assert_eq!(executions_of(&env, &without).await, 0);
    // One catch-up execution, then at most the on-time ticks of the passes.
    let dense_runs = executions_of(&env, &dense).await;
    assert!((1..=4).contains(&dense_runs), "{dense_runs} executions");
    // The catch-up ran the latest missed minute.
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM executions WHERE schedule_tick LIKE '{with}@%' \
             AND split_part(schedule_tick, '@', 2)::timestamptz = date_trunc('minute', now())"
        ))
        .await,
        1
    );
    let all = env
        .count("SELECT count(*) FROM executions WHERE schedule_tick IS NOT NULL")
        .await;
    let distinct = env
        .count("SELECT count(DISTINCT schedule_tick) FROM executions")
        .await;
    assert_eq!(all, distinct);
    // Each row is a pending execution of greet with the schedule's parameters.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM executions WHERE status = 'pending' AND workflow_name = 'greet' \
             AND parameters = '{\"name\": \"tick\"}'::jsonb"
        )
        .await,
        all
    );
    env.cleanup().await;
}

fn spawn_api(env: &TestEnv) -> Child {
    let port = common::free_port();
    Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("api")
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", &env.name)
        .env("RUNEFLOW_API_TOKEN", TOKEN)
        .env("RUNEFLOW_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start runeflow api")
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
}

#[tokio::test]
async fn two_api_processes_enqueue_exactly_one_execution_per_tick() {
    let env = TestEnv::new().await;
    let r = env.put("flows/greet.py", GREET).await;
    assert!(r.status.is_success(), "{}", r.text());
    let (first, second) = (spawn_api(&env), spawn_api(&env));
    // Both processes are up before the schedule exists, so the window below
    // is the schedule's whole life.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let id = scheduled(&env, "* * * * * *", true).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let r = delete_schedule(&env, &id).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(first);
    stop(second);

    let rows = env
        .count(&format!(
            "SELECT count(*) FROM executions WHERE schedule_tick LIKE '{id}@%'"
        ))
        .await;
    let distinct = env
        .count(&format!(
            "SELECT count(DISTINCT schedule_tick) FROM executions WHERE schedule_tick LIKE '{id}@%'"
        ))
        .await;
    println!("two API processes, ~10 s: {rows} executions, {distinct} distinct ticks");
    assert_eq!(rows, distinct, "a tick enqueued twice");
    // The last tick may fall between the delete and the pass that would
    // have seen it: 9 or 10 here; 8..=11 leaves room for a loaded machine.
    assert!((8..=11).contains(&rows), "{rows} executions in ~10 s");
    // Consecutive seconds, none lost: ticks span rows - 1 seconds.
    let span = env
        .count(&format!(
            "SELECT extract(epoch FROM max(t) - min(t))::bigint FROM (
                 SELECT split_part(schedule_tick, '@', 2)::timestamptz AS t FROM executions
                 WHERE schedule_tick LIKE '{id}@%') ticks"
        ))
        .await;
    assert_eq!(span, rows - 1, "ticks were skipped or collapsed");
    env.cleanup().await;
}

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(args)
        .env("RUNEFLOW_URL", url)
        .env("RUNEFLOW_API_TOKEN", TOKEN)
        .output()
        .expect("run runeflow")
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_schedules() {
    let env = TestEnv::new().await;
    let r = env.put("flows/greet.py", GREET).await;
    assert!(r.status.is_success(), "{}", r.text());
    let server = env.serve_http().await;
    let added = tokio::task::spawn_blocking({
        let server_url = server.url.clone();
        move || {
            cli(
                &server_url,
                &[
                    "schedules",
                    "add",
                    "greet",
                    "0 9 * * *",
                    "--timezone",
                    "Europe/Paris",
                    "-p",
                    "name=Ada",
                    "--no-catch-up",
                ],
            )
        }
    })
    .await
    .expect("join");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let out = String::from_utf8_lossy(&added.stdout).to_string();
    let id = out.split('\t').next().expect("id").to_owned();
    assert!(
        out.contains("\tapi\tgreet\t0 9 * * *\tEurope/Paris\tnext "),
        "{out}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM schedules WHERE NOT catch_up AND parameters = '{\"name\": \"Ada\"}'::jsonb")
            .await,
        1
    );
    let url = server.url.clone();
    let (paused, resumed, listed, removed, again) = tokio::task::spawn_blocking(move || {
        (
            cli(&url, &["schedules", "pause", &id]),
            cli(&url, &["schedules", "resume", &id]),
            cli(&url, &["schedules", "ls"]),
            cli(&url, &["schedules", "rm", &id]),
            cli(&url, &["schedules", "rm", &id]),
        )
    })
    .await
    .expect("join");
    assert!(
        String::from_utf8_lossy(&paused.stdout).ends_with("\tpaused\n"),
        "{}",
        String::from_utf8_lossy(&paused.stdout)
    );
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("\tnext "));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\tgreet\t0 9 * * *"));
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no schedule"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(env.count("SELECT count(*) FROM schedules").await, 0);
    drop(server);
    env.cleanup().await;
}

/// A tick's execution runs on a real worker like any other: a one-second
/// API schedule with the scheduler loop and `runeflow worker` running
/// gives successful executions with the schedule's parameters.
#[tokio::test]
async fn scheduled_executions_run_on_a_worker() {
    let env = TestEnv::new().await;
    let id = scheduled(&env, "* * * * * *", false).await;
    let worker = common::worker_process::WorkerProcess::spawn(&env, "w", &[]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loop_task = tokio::spawn(runeflow_api::scheduler::run(api_state(&env), async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = env
            .count(&format!(
                "SELECT count(*) FROM executions WHERE schedule_tick LIKE '{id}@%'
                 AND status = 'success' AND result = '\"hi tick\"'::jsonb"
            ))
            .await;
        if done >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled execution succeeded; worker log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    let _ = loop_task.await;
    drop(worker);
    env.cleanup().await;
}

#[tokio::test]
async fn a_paused_schedule_ticks_no_more_and_resumes_without_catching_up() {
    let env = TestEnv::new().await;
    // Per-minute, with catch_up: an hour behind, a pass would run one tick.
    let id = scheduled(&env, "0 * * * * *", true).await;
    let post = |verb: &'static str, id: String| {
        let env = &env;
        async move {
            env.call(
                common::authed("POST", &format!("/api/schedules/{id}/{verb}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        }
    };
    let r = post("pause", id.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["enabled"], false);
    // Paused twice is still paused.
    assert_eq!(post("pause", id.clone()).await.json()["enabled"], false);
    env.count(&format!(
        "WITH moved AS (UPDATE schedules SET last_tick = now() - interval '1 hour' \
         WHERE id = '{id}' RETURNING 1) SELECT count(*) FROM moved"
    ))
    .await;
    let state = api_state(&env);
    runeflow_api::scheduler::pass(&state).await.expect("pass");
    assert_eq!(
        executions_of(&env, &id).await,
        0,
        "a paused schedule ticked"
    );

    let second = chrono::Utc::now().timestamp() % 60;
    if !(3..=55).contains(&second) {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let r = post("resume", id.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["enabled"], true);
    runeflow_api::scheduler::pass(&state).await.expect("pass");
    // The hour missed while paused is not caught up.
    assert_eq!(executions_of(&env, &id).await, 0);
    // It ticks again: an hour behind now means one catch-up run.
    env.count(&format!(
        "WITH moved AS (UPDATE schedules SET last_tick = now() - interval '1 hour' \
         WHERE id = '{id}' RETURNING 1) SELECT count(*) FROM moved"
    ))
    .await;
    runeflow_api::scheduler::pass(&state).await.expect("pass");
    assert_eq!(executions_of(&env, &id).await, 1);

    let missing = post("pause", uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let audit = env.get("/api/audit?action=schedule.pause").await.json();
    assert_eq!(audit.as_array().map(Vec::len), Some(3), "{audit}");
    env.cleanup().await;
}
