//! `runeflow token create|ls|revoke`: scoped API tokens over `/api/tokens`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::json;

use super::client::ApiClient;
use crate::cli::TokenCommand;

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let client = ApiClient::new(&args.client)?;
            let body = json!({"name": args.name, "scopes": args.scopes});
            let (_, created) = client
                .json(Method::POST, "/api/tokens", Some(&body))
                .await?;
            // The one time the token is shown: alone on stdout, for scripts.
            println!("{}", created["token"].as_str().unwrap_or_default());
            eprintln!(
                "token {} ({}) created with scopes {}; it is not shown again",
                created["id"].as_str().unwrap_or("?"),
                created["name"].as_str().unwrap_or("?"),
                scopes(&created["scopes"])
            );
            Ok(())
        }
        TokenCommand::Ls(client) => {
            let client = ApiClient::new(&client)?;
            let list = client.get_json("/api/tokens").await?;
            for t in list.as_array().cloned().unwrap_or_default() {
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}{}",
                    t["id"].as_str().unwrap_or("?"),
                    t["name"].as_str().unwrap_or("?"),
                    scopes(&t["scopes"]),
                    t["created_at"].as_str().unwrap_or("?"),
                    t["last_used_at"].as_str().unwrap_or("never"),
                    t["revoked_at"]
                        .as_str()
                        .map(|at| format!("\trevoked {at}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        TokenCommand::Revoke(args) => {
            let client = ApiClient::new(&args.client)?;
            let id = utf8_percent_encode(&args.id, NON_ALPHANUMERIC).to_string();
            client.delete(&format!("/api/tokens/{id}")).await?;
            println!("{} revoked", args.id);
            Ok(())
        }
    }
}

fn scopes(value: &serde_json::Value) -> String {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
