//! `runeflow dev` with DATABASE_URL/REDIS_URL unset: it starts a private
//! PostgreSQL (initdb into its data folder) and redis-server, runs init, the
//! API and a worker, runs a workflow, and stops its children on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pids_of(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn dev_runs_everything_with_private_services_and_stops_them() {
    let data = std::env::temp_dir().join(format!("rf-dev-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut dev = Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("dev")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RUNEFLOW_DEV_DIR", &data)
        .env("RUNEFLOW_BIND", "127.0.0.1:0")
        .env("RUNEFLOW_API_TOKEN", "dev-token")
        .env("RUNEFLOW_CHILD_USERS", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start runeflow dev");
    let stdout = dev.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let api = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("runeflow dev printed its address within 60 s");
        if let Some(rest) = line.strip_prefix("runeflow dev: API on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    assert!(
        data.join("postgres/PG_VERSION").exists(),
        "initdb ran in the data folder"
    );
    let data_dir = data.canonicalize().unwrap().display().to_string();
    assert!(
        !pids_of(&data_dir).is_empty(),
        "a private postgres runs on {data_dir}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result: serde_json::Value = runtime.block_on(async {
        let client = reqwest::Client::new();
        for (path, body) in [
            ("helpers/__init__.py", "def twice(x):\n    return 2 * x\n"),
            ("flows/f.py", "from runeflow import workflow\nfrom helpers import twice\n\n@workflow\ndef f(x: int):\n    return twice(x)\n"),
        ] {
            let r = client
                .put(format!("{api}/api/files/{path}"))
                .bearer_auth("dev-token")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "PUT {path}: {}", r.status());
        }
        client
            .post(format!("{api}/api/executions"))
            .bearer_auth("dev-token")
            .json(&serde_json::json!({"workflow": "f", "parameters": {"x": 21}, "wait": 60}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["result"], 42);

    let pid = dev.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dev.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "runeflow dev did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_of(&data_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the private postgres outlived runeflow dev"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&data);
}
