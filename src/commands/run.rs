//! `runeflow run <workflow>`: enqueues an execution, waits for it (held
//! requests woken by the workers, no polling), prints the result as JSON or
//! the error with its traceback. Exit code: 0 success, 1 failed, 2 timeout
//! or cancelled (see [`crate::Exit`]).

use anyhow::Context;
use reqwest::Method;
use runeflow_shared::executions::Status;
use serde_json::{Map, Value, json};

use super::client::ApiClient;
use crate::Exit;
use crate::cli::RunArgs;

/// Seconds one held request waits before asking again.
const WAIT_SECS: u32 = 300;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let parameters = parameters(args.params_json.as_deref(), &args.params)?;
    let mut body = json!({"workflow": args.workflow, "parameters": parameters});
    if !args.no_wait {
        body["wait"] = json!(WAIT_SECS);
    }
    let headers: Vec<(&str, &str)> = args
        .idempotency_key
        .as_deref()
        .map(|key| ("Idempotency-Key", key))
        .into_iter()
        .collect();
    let (_, execution) = client
        .json_with(Method::POST, "/api/executions", Some(&body), &headers)
        .await?;
    follow(&client, execution, args.no_wait).await
}

/// Prints the id (`no_wait`), or waits for the execution's end and shows
/// its outcome (exit code as for `run`).
pub async fn follow(client: &ApiClient, mut execution: Value, no_wait: bool) -> anyhow::Result<()> {
    let id = execution["id"]
        .as_str()
        .context("the API's answer has no execution id")?
        .to_owned();
    if no_wait {
        println!("{id}");
        return Ok(());
    }
    while !is_final(&execution) {
        execution = client
            .get_json(&format!("/api/executions/{id}?wait={WAIT_SECS}"))
            .await?;
    }
    show_outcome(&execution)
}

/// `--params-json` merged with `-p key=value` (a value that parses as JSON
/// is that JSON, else the plain string).
pub fn parameters(json_object: Option<&str>, pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = match json_object {
        Some(text) => {
            match serde_json::from_str(text).context("--params-json is not valid JSON")? {
                Value::Object(map) => map,
                _ => anyhow::bail!("--params-json must be a JSON object"),
            }
        }
        None => Map::new(),
    };
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .with_context(|| format!("-p {pair}: expected key=value"))?;
        anyhow::ensure!(!key.is_empty(), "-p {pair}: the key is empty");
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        map.insert(key.to_owned(), value);
    }
    Ok(Value::Object(map))
}

fn is_final(execution: &Value) -> bool {
    execution["status"]
        .as_str()
        .and_then(|s| s.parse::<Status>().ok())
        .is_some_and(Status::is_final)
}

fn show_outcome(execution: &Value) -> anyhow::Result<()> {
    match execution["status"].as_str() {
        Some("success") => {
            println!("{}", serde_json::to_string_pretty(&execution["result"])?);
            Ok(())
        }
        status => {
            let error = &execution["error"];
            if let Some(tb) = error["traceback"].as_str() {
                eprint!("{tb}");
            }
            eprintln!(
                "{} {}: {}",
                status.unwrap_or("unknown"),
                error["type"].as_str().unwrap_or("error"),
                error["message"].as_str().unwrap_or("")
            );
            Err(Exit(if status == Some("failed") { 1 } else { 2 }).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parameters;
    use serde_json::json;

    #[test]
    fn pairs_are_json_when_they_parse_and_override_the_object() {
        let p = parameters(
            Some(r#"{"a": 1, "b": "x"}"#),
            &[
                "b=2".into(),
                "c=hello".into(),
                "d=[1,2]".into(),
                "e=".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"a": 1, "b": 2, "c": "hello", "d": [1, 2], "e": ""})
        );
        assert!(parameters(Some("[1]"), &[]).is_err());
        assert!(parameters(None, &["novalue".into()]).is_err());
    }
}
