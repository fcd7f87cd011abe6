//! One module per command. A command gets the parsed URL and its own
//! arguments, and returns an error for `main` to print.

mod delete;
mod import;
mod show;
mod unlock;
mod users;

use stickless::Config;

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::output::Output;

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let url = cli.global.url.ok_or(CliError::NoUrl)?;
    let config = Config::parse(&url)?;
    let out = Output {
        json: cli.global.json,
    };
    match cli.command {
        Command::Show(args) => show::run(config, &args, out),
        Command::Unlock(args) => unlock::run(config, &args.id, out),
        Command::Delete(args) => delete::run(config, &args.session.id, args.force, out),
        Command::Stats(args) => crate::stats::run(config, &args, out),
        Command::Check => crate::check::run(config, out),
        Command::Import(args) => import::run(config, &args, out),
        Command::UserSessions(args) => users::list(config, &args.user_id, out),
        Command::LogoutUser(args) => {
            users::logout(config, &args.user.user_id, args.except.as_deref(), out)
        }
    }
}
