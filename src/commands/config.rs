//! `runeflow config set|get|ls|rm`: config entries and secrets over
//! `/api/config`. A secret's value is read from stdin and never printed.

use std::io::Read;

use anyhow::Context;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::ApiClient;
use crate::cli::ConfigCommand;

pub async fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Set(args) => {
            let client = ApiClient::new(&args.client)?;
            let value = match (&args.value, args.secret, args.json) {
                (Some(_), true, _) => anyhow::bail!(
                    "a secret's value is read from stdin, not the command line \
                     (e.g. `printf %s \"$KEY\" | runeflow config set {} --secret`)",
                    args.key
                ),
                (None, true, _) => Value::String(secret_from_stdin()?),
                (Some(text), false, true) => {
                    serde_json::from_str(text).context("--json: the value is not valid JSON")?
                }
                (Some(text), false, false) => Value::String(text.clone()),
                (None, false, _) => {
                    anyhow::bail!("give a value (or --secret to read one from stdin)")
                }
            };
            let body = json!({"value": value, "secret": args.secret});
            client
                .json(Method::PUT, &entry_path(&args.key), Some(&body))
                .await?;
            let kind = if args.secret {
                "secret"
            } else {
                "config entry"
            };
            println!("{kind} {} set", args.key);
            Ok(())
        }
        ConfigCommand::Get(args) => {
            let client = ApiClient::new(&args.client)?;
            let entry = client.get_json(&entry_path(&args.key)).await?;
            match entry.get("value") {
                Some(Value::String(text)) => println!("{text}"),
                Some(value) => println!("{value}"),
                None => anyhow::bail!(
                    "{} is a secret: its value is never shown (workflows read it with context.secret)",
                    args.key
                ),
            }
            Ok(())
        }
        ConfigCommand::Ls(client) => {
            let client = ApiClient::new(&client)?;
            let list = client.get_json("/api/config").await?;
            for entry in list.as_array().cloned().unwrap_or_default() {
                let kind = if entry["secret"].as_bool().unwrap_or(false) {
                    "secret"
                } else {
                    "config"
                };
                println!(
                    "{}\t{kind}\tupdated {}",
                    entry["key"].as_str().unwrap_or("?"),
                    entry["updated_at"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        ConfigCommand::Rm(args) => {
            let client = ApiClient::new(&args.client)?;
            client.delete(&entry_path(&args.key)).await?;
            println!("{} deleted", args.key);
            Ok(())
        }
    }
}

fn entry_path(key: &str) -> String {
    format!("/api/config/{}", utf8_percent_encode(key, NON_ALPHANUMERIC))
}

/// All of stdin, less one trailing newline (as `echo` adds).
fn secret_from_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the secret from stdin (it must be UTF-8)")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    anyhow::ensure!(!text.is_empty(), "no secret on stdin");
    Ok(text)
}
