//! `runeflow endpoints`: list the workflows exposed as HTTP endpoints,
//! manage their keys (`keys`, `create-key`, `revoke-key`) and `call` one.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::json;

use super::client::ApiClient;
use super::run::{follow, parameters};
use crate::cli::EndpointsCommand;

/// Seconds a `call --wait` request is held (then `follow` asks again).
const WAIT_SECS: u32 = 300;

pub async fn run(command: EndpointsCommand) -> anyhow::Result<()> {
    match command {
        EndpointsCommand::Ls(client) => {
            let client = ApiClient::new(&client)?;
            let list = client.get_json("/api/workflows").await?;
            for w in list["workflows"].as_array().cloned().unwrap_or_default() {
                if w["settings"]["endpoint"].as_bool() == Some(true) {
                    println!(
                        "{}\t/api/endpoints/{}\t{}",
                        w["name"].as_str().unwrap_or("?"),
                        w["name"].as_str().unwrap_or("?"),
                        w["path"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(())
        }
        EndpointsCommand::Keys(args) => {
            let client = ApiClient::new(&args.client)?;
            let list = client
                .get_json(&format!("/api/workflows/{}/keys", encode(&args.name)))
                .await?;
            for k in list["keys"].as_array().cloned().unwrap_or_default() {
                let state = if k["revoked_at"].is_null() {
                    "live"
                } else {
                    "revoked"
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}",
                    k["id"].as_str().unwrap_or("?"),
                    k["name"].as_str().unwrap_or("?"),
                    state,
                    k["created_at"].as_str().unwrap_or("?"),
                    k["last_used_at"].as_str().unwrap_or("never"),
                );
            }
            Ok(())
        }
        EndpointsCommand::CreateKey(args) => {
            let client = ApiClient::new(&args.client)?;
            let (_, created) = client
                .json(
                    Method::POST,
                    &format!("/api/workflows/{}/keys", encode(&args.workflow)),
                    Some(&json!({"name": args.name})),
                )
                .await?;
            eprintln!(
                "key {} created; it is shown only now (send it as X-Runeflow-Key):",
                created["id"].as_str().unwrap_or("?")
            );
            println!("{}", created["key"].as_str().unwrap_or_default());
            Ok(())
        }
        EndpointsCommand::RevokeKey(args) => {
            let client = ApiClient::new(&args.client)?;
            client
                .json_with(
                    Method::DELETE,
                    &format!(
                        "/api/workflows/{}/keys/{}",
                        encode(&args.name),
                        encode(&args.id)
                    ),
                    None,
                    &[],
                )
                .await?;
            println!("revoked {}", args.id);
            Ok(())
        }
        EndpointsCommand::Call(args) => {
            let client = ApiClient::new(&args.client)?;
            let body = parameters(args.params_json.as_deref(), &args.params)?;
            let mut path = format!("/api/endpoints/{}", encode(&args.name));
            if args.wait {
                path.push_str(&format!("?wait={WAIT_SECS}"));
            }
            let headers: Vec<(&str, &str)> = args
                .idempotency_key
                .as_deref()
                .map(|key| ("Idempotency-Key", key))
                .into_iter()
                .collect();
            let (_, execution) = client
                .json_with(Method::POST, &path, Some(&body), &headers)
                .await?;
            follow(&client, execution, !args.wait).await
        }
    }
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}
