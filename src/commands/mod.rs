//! One module per subcommand.

pub mod api;
pub mod dev;
mod dev_services;
pub mod init;
pub mod worker;

use crate::cli::Command;

pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(&args.config).await.map(|_| ()),
        Command::Api(args) => api::run(&args.config).await,
        Command::Worker(args) => worker::run(&args.config, args.worker).await,
        Command::Dev(args) => dev::run(args).await,
    }
}
