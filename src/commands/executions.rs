//! `runeflow executions` (newest first, one line each), `runeflow logs <id>`
//! and `runeflow cancel <id>`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::client::ApiClient;
use crate::cli::{ExecutionIdArgs, ExecutionsArgs};

pub async fn run_list(args: ExecutionsArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let mut query = format!("/api/executions?limit={}", args.limit);
    for (key, value) in [("status", &args.status), ("workflow", &args.workflow)] {
        if let Some(value) = value {
            query.push_str(&format!(
                "&{key}={}",
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            ));
        }
    }
    let page = client.get_json(&query).await?;
    for e in page["executions"].as_array().cloned().unwrap_or_default() {
        let duration = e["duration_ms"]
            .as_i64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
        println!(
            "{}\t{}\t{}\t{}\t{}",
            e["id"].as_str().unwrap_or("?"),
            e["status"].as_str().unwrap_or("?"),
            e["workflow"].as_str().unwrap_or("?"),
            e["queued_at"].as_str().unwrap_or("?"),
            duration
        );
    }
    Ok(())
}

pub async fn run_logs(args: ExecutionIdArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let id = utf8_percent_encode(&args.id, NON_ALPHANUMERIC).to_string();
    let execution = client.get_json(&format!("/api/executions/{id}")).await?;
    // Earlier attempts that failed and were retried, each under a header
    // naming its error, then the latest attempt's output.
    let attempts = execution["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for earlier in &attempts {
        println!(
            "--- attempt {} {}: {}: {}",
            earlier["attempt"],
            earlier["status"].as_str().unwrap_or("?"),
            earlier["error"]["type"].as_str().unwrap_or("?"),
            earlier["error"]["message"].as_str().unwrap_or("")
        );
        print!("{}", earlier["logs"].as_str().unwrap_or_default());
    }
    if !attempts.is_empty() {
        println!("--- attempt {}", execution["attempt"]);
    }
    print!("{}", execution["logs"].as_str().unwrap_or_default());
    if execution["logs_truncated"].as_bool() == Some(true) {
        eprintln!("(the output was truncated at the worker's limit)");
    }
    Ok(())
}

/// `runeflow cancel ID`: prints the execution's status after the cancel
/// (`cancelled`); an execution already final otherwise is the API's 409.
pub async fn run_cancel(args: ExecutionIdArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let id = utf8_percent_encode(&args.id, NON_ALPHANUMERIC).to_string();
    let (_, execution) = client
        .json(
            reqwest::Method::POST,
            &format!("/api/executions/{id}/cancel"),
            None,
        )
        .await?;
    println!(
        "{} {}",
        execution["id"].as_str().unwrap_or(&args.id),
        execution["status"].as_str().unwrap_or("unknown")
    );
    Ok(())
}
