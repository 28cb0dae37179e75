//! `runeflow audit`: the audit log over `GET /api/audit`, one row a line
//! (time, actor, action, target, outcome, status), newest first.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::client::ApiClient;
use crate::cli::AuditArgs;

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let mut query = format!("/api/audit?limit={}", args.limit);
    for (key, value) in [
        ("since", &args.since),
        ("actor", &args.actor),
        ("action", &args.action),
    ] {
        if let Some(value) = value {
            query.push_str(&format!(
                "&{key}={}",
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            ));
        }
    }
    let rows = client.get_json(&query).await?;
    for row in rows.as_array().cloned().unwrap_or_default() {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            row["at"].as_str().unwrap_or("?"),
            row["actor"].as_str().unwrap_or("?"),
            row["action"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("-"),
            row["outcome"].as_str().unwrap_or("?"),
            row["status"]
                .as_i64()
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        );
    }
    Ok(())
}
