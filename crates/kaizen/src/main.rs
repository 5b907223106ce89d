//! The `kaizen` binary: parse the command line, run the command, map the outcome to an exit code.

mod cli;
mod commands;
mod printer;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    settings::keep_freed_memory();
    let cli = cli::Cli::parse();
    settings::init_tracing(cli.global.verbose, cli.global.quiet);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            commands::exit_code_for(&err)
        }
    }
}
