//! One module per subcommand.

pub mod api;
pub mod audit;
mod client;
pub mod config;
pub mod dev;
mod dev_services;
pub mod endpoints;
pub mod executions;
pub mod git;
pub mod import;
pub mod init;
pub mod ls;
pub mod pull;
pub mod push;
pub mod run;
pub mod schedules;
pub mod secrets;
pub mod tokens;
pub mod worker;
pub mod worker_health;
mod workspace_folder;

use crate::cli::{Command, ServerArgs};
use crate::secrets_check::refuse_example_secrets;

pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    // Server processes refuse secrets left at their .env.example values.
    if let Command::Init(ServerArgs { config }) | Command::Api(ServerArgs { config }) = &command {
        refuse_example_secrets(config)?;
    }
    if let Command::Worker(args) = &command {
        refuse_example_secrets(&args.config)?;
    }
    match command {
        Command::Init(args) => init::run(&args.config).await.map(|_| ()),
        Command::Api(args) => api::run(&args.config).await,
        Command::Worker(args) => worker::run(&args.config, args.worker).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Push(args) => push::run(args).await,
        Command::Pull(args) => pull::run(args).await,
        Command::Ls(args) => ls::run_ls(args).await,
        Command::Workflows(args) => ls::run_workflows(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Executions(args) => executions::run_list(args).await,
        Command::Logs(args) => executions::run_logs(args).await,
        Command::Cancel(args) => executions::run_cancel(args).await,
        Command::Schedules(command) => schedules::run(command).await,
        Command::Token(command) => tokens::run(command).await,
        Command::Config(command) => config::run(command).await,
        Command::Secrets(command) => secrets::run(command).await,
        Command::Endpoints(command) => endpoints::run(command).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Git(command) => git::run(command).await,
        Command::Import(args) => import::run(args).await,
        Command::WorkerHealth(args) => worker_health::run(&args),
    }
}
