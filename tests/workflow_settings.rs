//! Decorator settings through the API, on real PostgreSQL and Redis: found
//! on write, shown by `GET /api/workflows`, kept in step with the file on
//! edit, move and delete, and re-detected for old rows by the backfill.

mod common;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::TestEnv;
use serde_json::{Value, json};

const SCHEDULED: &str = r#"from runeflow import workflow

@workflow(schedule="0 9 * * *", timezone="Europe/Paris", catch_up=False,
          retries=3, retry_backoff=2.0, retry_on=["TimeoutError", "ConnectionError"],
          endpoint=True, max_concurrency=2, timeout=30)
def report():
    return 1
"#;

const PROVIDER: &str = r#"from runeflow import data_provider

@data_provider(cache_ttl_seconds=60)
def regions():
    return ["eu", "us"]

@data_provider
def zones():
    return []
"#;

/// The one workflow called `name` in `GET /api/workflows`.
async fn listed(env: &TestEnv, name: &str) -> Option<Value> {
    let r = env.get("/api/workflows").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let all = r.json()["workflows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut found: Vec<Value> = all.into_iter().filter(|w| w["name"] == name).collect();
    assert!(found.len() <= 1, "{found:?}");
    found.pop()
}

fn times(schedule: &Value) -> Vec<DateTime<chrono::FixedOffset>> {
    schedule["next_runs"]
        .as_array()
        .expect("next_runs")
        .iter()
        .map(|t| DateTime::parse_from_rfc3339(t.as_str().expect("string")).expect("rfc3339"))
        .collect()
}

#[tokio::test]
async fn settings_follow_the_file_through_edit_move_and_delete() {
    let env = TestEnv::new().await;
    let r = env.put("flows/report.py", SCHEDULED).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["diagnostics"], json!([]));
    assert_eq!(r.json()["workflows"][0]["settings"]["retries"], 3);

    let w = listed(&env, "report").await.expect("listed");
    let settings = &w["settings"];
    assert_eq!(settings["schedule"]["cron"], "0 9 * * *");
    assert_eq!(settings["schedule"]["timezone"], "Europe/Paris");
    assert_eq!(settings["schedule"]["catch_up"], false);
    assert_eq!(settings["retries"], 3);
    assert_eq!(settings["retry_backoff_seconds"], 2.0);
    assert_eq!(
        settings["retry_on"],
        json!(["TimeoutError", "ConnectionError"])
    );
    assert_eq!(settings["endpoint"], true);
    assert_eq!(settings["max_concurrency"], 2);
    assert_eq!(settings["cache_ttl_seconds"], Value::Null);
    assert_eq!(w["timeout_seconds"], 30.0);
    let next = times(&settings["schedule"]);
    assert_eq!(next.len(), 3, "{settings}");
    let now = Utc::now();
    for (i, at) in next.iter().enumerate() {
        assert!(*at > now, "{at} is not after {now}");
        assert_eq!(
            at.format("%H:%M:%S").to_string(),
            "09:00:00",
            "Paris wall clock"
        );
        let paris = at.offset().local_minus_utc();
        assert!(paris == 3600 || paris == 7200, "{at}");
        if i > 0 {
            let gap = *at - next[i - 1];
            assert!((23..=25).contains(&gap.num_hours()), "daily: {gap}");
        }
    }
    assert_eq!(
        env.count("SELECT count(*) FROM workflows WHERE settings ? 'schedule'")
            .await,
        1
    );

    // An edit changes one setting and removes the others.
    let edited = SCHEDULED
        .replace("\"0 9 * * *\"", "\"*/10 * * * * *\"")
        .replace(", timezone=\"Europe/Paris\", catch_up=False,", ",")
        .replace(
            "retries=3, retry_backoff=2.0, retry_on=[\"TimeoutError\", \"ConnectionError\"],\n          endpoint=True, max_concurrency=2, ",
            "",
        );
    assert!(
        edited.contains("@workflow(schedule=\"*/10 * * * * *\",\n          timeout=30)"),
        "{edited}"
    );
    let r = env.put("flows/report.py", edited.as_str()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let settings = listed(&env, "report").await.expect("listed")["settings"].clone();
    assert_eq!(
        (
            &settings["schedule"]["cron"],
            &settings["schedule"]["timezone"],
            &settings["schedule"]["catch_up"]
        ),
        (&json!("*/10 * * * * *"), &json!("UTC"), &json!(true))
    );
    for key in [
        "retries",
        "retry_backoff_seconds",
        "retry_on",
        "max_concurrency",
    ] {
        assert_eq!(settings[key], Value::Null, "{key}: {settings}");
    }
    assert_eq!(settings["endpoint"], false);
    let next = times(&settings["schedule"]);
    assert_eq!((next[1] - next[0]).num_seconds(), 10, "{next:?}");
    assert_eq!((next[2] - next[1]).num_seconds(), 10, "{next:?}");

    // A move keeps them under the new path.
    let r = env
        .post_json(
            "/api/files/move",
            json!({"from": "flows/report.py", "to": "nightly/report.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let w = listed(&env, "report").await.expect("still listed");
    assert_eq!(w["path"], "nightly/report.py");
    assert_eq!(w["settings"]["schedule"]["cron"], "*/10 * * * * *");
    assert_eq!(
        env.count("SELECT count(*) FROM workflows WHERE path = 'flows/report.py'")
            .await,
        0
    );

    // A delete drops them.
    let r = env.delete("nightly/report.py").await;
    assert!(r.status.is_success(), "{}", r.text());
    assert!(listed(&env, "report").await.is_none());
    assert_eq!(
        env.count("SELECT count(*) FROM workflows WHERE settings ? 'schedule'")
            .await,
        0
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_bad_setting_is_a_diagnostic_and_is_left_out() {
    let env = TestEnv::new().await;
    let source = "from runeflow import workflow\n\n\
                  @workflow(schedule='0 9 * *', retries=-1, max_concurrency=4)\n\
                  def broken():\n    pass\n";
    let r = env.put("flows/broken.py", source).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    assert_eq!(body["entity_type"], "workflow");
    let diagnostics = body["diagnostics"].as_array().expect("diagnostics").clone();
    assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
    let messages: Vec<&str> = diagnostics
        .iter()
        .map(|d| d["message"].as_str().unwrap_or_default())
        .collect();
    assert!(
        messages[0].contains("not a valid cron expression") && messages[0].contains("no schedule"),
        "{messages:?}"
    );
    assert!(messages[1].contains("retries=-1"), "{messages:?}");
    assert!(
        diagnostics.iter().all(|d| d["line"] == 3),
        "{diagnostics:?}"
    );

    let w = listed(&env, "broken").await.expect("still a workflow");
    assert_eq!(w["settings"]["schedule"], Value::Null);
    assert_eq!(w["settings"]["retries"], Value::Null);
    assert_eq!(
        w["settings"]["max_concurrency"], 4,
        "the good setting stays"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM workflows WHERE settings ? 'schedule'")
            .await,
        0
    );

    let r = env
        .put(
            "flows/broken.py",
            source.replace("'0 9 * *'", "'0 9 * * *', timezone='Mars/Olympus'"),
        )
        .await;
    let body = r.json();
    assert!(
        body["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Mars/Olympus") && m.contains("IANA")),
        "{body}"
    );
    assert_eq!(
        listed(&env, "broken").await.expect("listed")["settings"]["schedule"],
        Value::Null
    );
    env.cleanup().await;
}

#[tokio::test]
async fn data_providers_show_their_cache_ttl() {
    let env = TestEnv::new().await;
    let r = env.put("providers/geo.py", PROVIDER).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let regions = listed(&env, "regions").await.expect("listed");
    assert_eq!(regions["kind"], "data_provider");
    assert_eq!(regions["settings"]["cache_ttl_seconds"], 60.0);
    assert_eq!(regions["settings"]["schedule"], Value::Null);
    assert_eq!(regions["settings"]["endpoint"], false);
    let zones = listed(&env, "zones").await.expect("listed");
    assert_eq!(zones["settings"]["cache_ttl_seconds"], 300.0, "the default");
    env.cleanup().await;
}

#[tokio::test]
async fn the_backfill_re_detects_rows_written_before_settings_existed() {
    let env = TestEnv::new().await;
    env.put("flows/report.py", SCHEDULED).await;
    env.put("providers/geo.py", PROVIDER).await;
    env.put("lib/util.py", "X = 1\n").await;
    // As the migration leaves rows that existed before it.
    use sea_orm::ConnectionTrait;
    env.db
        .execute_unprepared("UPDATE workflows SET settings = '{}'")
        .await
        .expect("reset");
    assert!(listed(&env, "report").await.expect("listed")["settings"]["schedule"].is_null());

    let report = runeflow_shared::workspace::backfill_settings(&env.db)
        .await
        .expect("backfill");
    assert_eq!((report.files, report.updated), (2, 3), "{report:?}");
    let w = listed(&env, "report").await.expect("listed");
    assert_eq!(w["settings"]["schedule"]["timezone"], "Europe/Paris");
    assert_eq!(w["settings"]["max_concurrency"], 2);
    assert_eq!(
        listed(&env, "zones").await.expect("listed")["settings"]["cache_ttl_seconds"],
        300.0
    );

    // Idempotent: a second run changes nothing.
    let again = runeflow_shared::workspace::backfill_settings(&env.db)
        .await
        .expect("backfill");
    assert_eq!((again.files, again.updated), (2, 0), "{again:?}");

    // `runeflow init` runs it.
    env.db
        .execute_unprepared("UPDATE workflows SET settings = '{}' WHERE name = 'report'")
        .await
        .expect("reset");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("init")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", &env.name)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run runeflow init");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("settings of 1 workflows updated from 2 files"),
        "{stdout}"
    );
    let w = listed(&env, "report").await.expect("listed");
    assert_eq!(w["settings"]["retries"], 3);
    env.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_settings() {
    let env = TestEnv::new().await;
    let doc = env.get("/api/openapi.json").await.json();
    let schemas = &doc["components"]["schemas"];
    let settings = &schemas["SettingsInfo"]["properties"];
    for key in [
        "schedule",
        "retries",
        "retry_backoff_seconds",
        "retry_on",
        "endpoint",
        "max_concurrency",
        "cache_ttl_seconds",
    ] {
        assert!(
            settings.get(key).is_some(),
            "SettingsInfo.{key}: {settings}"
        );
    }
    let schedule = &schemas["ScheduleInfo"]["properties"];
    for key in ["cron", "timezone", "catch_up", "next_runs"] {
        assert!(
            schedule.get(key).is_some(),
            "ScheduleInfo.{key}: {schedule}"
        );
    }
    assert!(
        schemas["WorkflowInfo"]["properties"]
            .get("settings")
            .is_some(),
        "{}",
        schemas["WorkflowInfo"]
    );
    env.cleanup().await;
}

#[tokio::test]
async fn runeflow_workflows_prints_the_settings() {
    let env = TestEnv::new().await;
    env.put("flows/report.py", SCHEDULED).await;
    env.put("providers/geo.py", PROVIDER).await;
    let server = env.serve_http().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("workflows")
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", common::TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the runeflow binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout
        .lines()
        .find(|l| l.starts_with("report\t"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        report.contains("\tschedule=\"0 9 * * *\" Europe/Paris no-catch-up next 2"),
        "{report}"
    );
    assert!(
        report.ends_with(
            "  retries=3  retry_backoff=2s  retry_on=[TimeoutError,ConnectionError]  endpoint  \
             max_concurrency=2  timeout=30s"
        ),
        "{report}"
    );
    let regions = stdout
        .lines()
        .find(|l| l.starts_with("regions\t"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(regions.ends_with("()\tcache_ttl=60s"), "{regions}");
    env.cleanup().await;
}
