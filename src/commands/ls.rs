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
        println!(
            "{}\t{}\t{}::{}\t({})",
            w["name"].as_str().unwrap_or("?"),
            w["kind"].as_str().unwrap_or("?"),
            w["path"].as_str().unwrap_or("?"),
            w["function"].as_str().unwrap_or("?"),
            parameters.join(", ")
        );
    }
    Ok(())
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
