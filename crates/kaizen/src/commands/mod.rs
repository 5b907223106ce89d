//! One module per command. Exit codes: 0 success, 1 a user or input failure (bad arguments,
//! unknown ids, refused input), 2 an internal failure.

mod quickstart;
mod server;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Quickstart(args) => quickstart::run(args).await,
            Command::Experiments(_) | Command::Runs(_) | Command::Models(_) => {
                anyhow::bail!("this command is not available yet in this build")
            }
        }
    })
}

/// Maps an error to the documented exit codes.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<kaizen_core::Error>() {
            return match e.kind {
                kaizen_core::ErrorKind::Internal => ExitCode::from(2),
                _ => ExitCode::from(1),
            };
        }
    }
    ExitCode::from(1)
}
