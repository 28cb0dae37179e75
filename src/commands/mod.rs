//! One module per subcommand.

pub mod api;
pub mod init;

use crate::cli::Command;

pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(&args.config).await.map(|_| ()),
        Command::Api(args) => api::run(&args.config).await,
    }
}
