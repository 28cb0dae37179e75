//! `runeflow ls [PREFIX]` and `runeflow workflows`: listings, one line each.

use super::client::ApiClient;
use crate::cli::{ClientArgs, LsArgs};

pub async fn run_ls(args: LsArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    for file in client
        .list_files(args.prefix.as_deref().unwrap_or_default())
        .await?
    {
        println!("{}\t{}\t{}", file.entity_type, file.size, file.path);
    }
    Ok(())
}

pub async fn run_workflows(args: ClientArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args)?;
    let listing = client.get_json("/api/workflows").await?;
    let workflows = listing["workflows"].as_array().cloned().unwrap_or_default();
    for w in workflows {
        let parameters: Vec<String> = w["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(parameter).collect())
            .unwrap_or_default();
        let mut line = format!(
            "{}\t{}\t{}::{}\t({})",
            w["name"].as_str().unwrap_or("?"),
            w["kind"].as_str().unwrap_or("?"),
            w["path"].as_str().unwrap_or("?"),
            w["function"].as_str().unwrap_or("?"),
            parameters.join(", ")
        );
        let settings = settings(&w);
        if !settings.is_empty() {
            line.push('\t');
            line.push_str(&settings.join("  "));
        }
        println!("{line}");
    }
    Ok(())
}

/// The decorator settings that are set, as `key=value` words, e.g.
/// `schedule="0 9 * * *" Europe/Paris next 2026-12-07T09:00:00+01:00`.
fn settings(w: &serde_json::Value) -> Vec<String> {
    let s = &w["settings"];
    let mut words = Vec::new();
    if let Some(schedule) = s["schedule"].as_object() {
        let mut text = format!(
            "schedule=\"{}\" {}",
            schedule.get("cron").and_then(|v| v.as_str()).unwrap_or("?"),
            schedule
                .get("timezone")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
        );
        if schedule.get("catch_up").and_then(|v| v.as_bool()) == Some(false) {
            text.push_str(" no-catch-up");
        }
        if let Some(next) = schedule
            .get("next_runs")
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
        {
            text.push_str(&format!(" next {next}"));
        }
        words.push(text);
    }
    if let Some(retries) = s["retries"].as_u64() {
        words.push(format!("retries={retries}"));
    }
    if let Some(backoff) = s["retry_backoff_seconds"].as_f64() {
        words.push(format!("retry_backoff={backoff}s"));
    }
    if let Some(names) = s["retry_on"].as_array() {
        let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
        words.push(format!("retry_on=[{}]", names.join(",")));
    }
    if s["endpoint"].as_bool() == Some(true) {
        words.push("endpoint".to_owned());
    }
    if let Some(limit) = s["max_concurrency"].as_u64() {
        words.push(format!("max_concurrency={limit}"));
    }
    if let Some(timeout) = w["timeout_seconds"].as_f64() {
        words.push(format!("timeout={timeout}s"));
    }
    if let Some(ttl) = s["cache_ttl_seconds"].as_f64() {
        words.push(format!("cache_ttl={ttl}s"));
    }
    words
}

/// `name: annotation = default`, as written in the source.
fn parameter(p: &serde_json::Value) -> String {
    let mut text = p["name"].as_str().unwrap_or("?").to_owned();
    if let Some(annotation) = p["annotation"].as_str() {
        text.push_str(&format!(": {annotation}"));
    }
    if let Some(default) = p["default_source"].as_str() {
        text.push_str(&format!(" = {default}"));
    }
    text
}
