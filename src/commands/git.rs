//! `runeflow git push|pull`: asks the API to sync the workspace with a
//! remote, and prints what it did.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::ApiClient;
use crate::Exit;
use crate::cli::GitCommand;

pub async fn run(command: GitCommand) -> anyhow::Result<()> {
    match command {
        GitCommand::Push(args) => {
            let client = ApiClient::new(&args.client)?;
            let body = json!({"remote": args.remote, "branch": args.branch,
                              "message": args.message, "force": args.force});
            let (_, report) = client
                .json(Method::POST, "/api/git/push", Some(&body))
                .await?;
            if report["pushed"] == true {
                println!(
                    "pushed {} files as {}",
                    report["files"],
                    report["commit"].as_str().unwrap_or("?")
                );
            } else {
                println!("nothing to push: the branch already holds the workspace");
            }
            Ok(())
        }
        GitCommand::Pull(args) => {
            let client = ApiClient::new(&args.client)?;
            let body = json!({"remote": args.remote, "branch": args.branch, "prefer": args.prefer});
            let (_, report) = client
                .json(Method::POST, "/api/git/pull", Some(&body))
                .await?;
            print_pull(&report);
            if report["conflicts"].as_u64().unwrap_or(0) > 0 {
                return Err(Exit(1).into());
            }
            Ok(())
        }
    }
}

/// One line per file, then a summary; conflicts also on stderr.
fn print_pull(report: &Value) {
    for action in report["actions"].as_array().cloned().unwrap_or_default() {
        let line = format!(
            "{} {}{}",
            action["action"].as_str().unwrap_or("?"),
            action["path"].as_str().unwrap_or("?"),
            action["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        println!("{line}");
    }
    let conflicts = report["conflicts"].as_u64().unwrap_or(0);
    println!(
        "pulled {}: {} files changed, {} conflicts{}",
        report["commit"].as_str().unwrap_or("?"),
        report["actions"].as_array().map_or(0, Vec::len) as u64 - conflicts,
        conflicts,
        if conflicts > 0 {
            " (left untouched; pull again with --prefer ours|theirs)"
        } else {
            ""
        }
    );
}
