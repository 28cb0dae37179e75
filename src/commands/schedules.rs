//! `runeflow schedules ls|add|rm`: cron schedules over `/api/schedules`.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::client::ApiClient;
use crate::cli::SchedulesCommand;

pub async fn run(command: SchedulesCommand) -> anyhow::Result<()> {
    match command {
        SchedulesCommand::Ls(client) => {
            let client = ApiClient::new(&client)?;
            let all = client.get_json("/api/schedules").await?;
            for s in all.as_array().cloned().unwrap_or_default() {
                println!("{}", line(&s));
            }
            Ok(())
        }
        SchedulesCommand::Add(args) => {
            let client = ApiClient::new(&args.client)?;
            let parameters = super::run::parameters(args.params_json.as_deref(), &args.params)?;
            let mut body = json!({
                "workflow": args.workflow,
                "cron": args.cron,
                "parameters": parameters,
                "catch_up": !args.no_catch_up,
            });
            if let Some(zone) = args.timezone {
                body["timezone"] = Value::String(zone);
            }
            let (_, created) = client
                .json(reqwest::Method::POST, "/api/schedules", Some(&body))
                .await?;
            println!("{}", line(&created));
            Ok(())
        }
        SchedulesCommand::Rm(args) => {
            let client = ApiClient::new(&args.client)?;
            let id = utf8_percent_encode(&args.id, NON_ALPHANUMERIC).to_string();
            client.delete(&format!("/api/schedules/{id}")).await?;
            println!("{} removed", args.id);
            Ok(())
        }
        SchedulesCommand::Pause(args) => set_enabled(args, "pause").await,
        SchedulesCommand::Resume(args) => set_enabled(args, "resume").await,
    }
}

/// `POST /api/schedules/{id}/pause|resume`, then the schedule's line.
async fn set_enabled(args: crate::cli::ScheduleIdArgs, verb: &str) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let id = utf8_percent_encode(&args.id, NON_ALPHANUMERIC).to_string();
    let (_, schedule) = client
        .json(
            reqwest::Method::POST,
            &format!("/api/schedules/{id}/{verb}"),
            None,
        )
        .await?;
    println!("{}", line(&schedule));
    Ok(())
}

/// id, source, workflow, cron, zone, next run: one tab-separated line.
fn line(s: &Value) -> String {
    let text = |key: &str| s[key].as_str().unwrap_or("?").to_owned();
    let next = if s["enabled"] == Value::Bool(false) {
        "paused".to_owned()
    } else {
        format!("next {}", s["next_runs"][0].as_str().unwrap_or("-"))
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{next}",
        text("id"),
        text("source"),
        text("workflow"),
        text("cron"),
        text("timezone"),
    )
}
