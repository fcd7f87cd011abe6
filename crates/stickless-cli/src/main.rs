//! `stickless`: inspect and operate a stickless session store from a shell.
//!
//! Exit status: 0 done, 1 the command failed or `check` found a problem
//! (the message on stderr says which and what to do), 2 bad usage.

mod check;
mod cli;
mod commands;
mod error;
mod header;
mod inspect;
mod nodes;
mod output;
mod render;
mod stats;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `stickless stats | head`: the reader left; nothing went wrong.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stickless: {e}");
            ExitCode::FAILURE
        }
    }
}
