//! The command line: every command, its options, and the options they share.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use stickless::php::SerializeHandler;

/// Inspect and operate a stickless session store.
///
/// Every command takes the store as a save_path URL, the same one php.ini
/// gives `session.save_path` (including `prefix=`, credentials, TLS files and
/// `encryption_keys`): standalone, `redis+cluster://` (every primary) or
/// `redis+sentinel://`.
#[derive(Debug, Parser)]
#[command(name = "stickless", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The store, in session.save_path syntax, e.g.
    /// `redis://127.0.0.1:6379/0?prefix=myapp:`.
    #[arg(long, env = "STICKLESS_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands: each is a variant and a module under `commands/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Where a session lives, its metadata, lock state and contents.
    Show(ShowArgs),
    /// Free a session's lock, handing it to the oldest waiter.
    Unlock(IdArgs),
    /// Delete a session (the user is logged out).
    Delete(DeleteArgs),
    /// Count and measure every session, scanning each primary.
    Stats(StatsArgs),
    /// Check that the store is fit for stickless; exits 1 on a problem.
    Check,
    /// Move every phpredis or Symfony session into stickless's format.
    Import(ImportArgs),
    /// List a user's live sessions (those bound with Stickless\bind_user()).
    UserSessions(UserArgs),
    /// Destroy every session of a user ("log out everywhere").
    LogoutUser(LogoutArgs),
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The old handler and its key prefix: `phpredis` (keys
    /// `PHPREDIS_SESSION:<id>`), `phpredis:<prefix>`, `symfony` (`sf_s<id>`)
    /// or `symfony:<prefix>`.
    #[arg(long, value_parser = parse_legacy)]
    pub from: stickless::legacy::Legacy,
    /// Count what would be imported, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keys asked for per SCAN call: the most work one call costs the server.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub count: u32,
}

fn parse_legacy(s: &str) -> Result<stickless::legacy::Legacy, String> {
    stickless::legacy::Legacy::parse(s)
        .ok_or_else(|| format!("`{s}` is not phpredis[:<prefix>] or symfony[:<prefix>]"))
}

/// A user, by the ID the application bound its sessions to.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user ID, exactly as passed to Stickless\bind_user().
    pub user_id: String,
}

/// `logout-user`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub user: UserArgs,
    /// Keep this session (its ID, as in the session cookie).
    #[arg(long, value_name = "SESSION_ID")]
    pub except: Option<String>,
}

/// A session, named by its ID (the session cookie's value).
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The session ID, as in the PHPSESSID cookie.
    pub id: String,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub session: IdArgs,
    /// Write the session data's bytes (decrypted and expanded) to stdout,
    /// and nothing else.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// How the data is laid out: php, php_serialize, laravel_php or
    /// laravel_json. Without it, each is tried in that order.
    #[arg(long, value_parser = parse_handler)]
    pub serialize_handler: Option<SerializeHandler>,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub session: IdArgs,
    /// Delete even while a request holds the session's lock; that
    /// request's write is then refused with a warning.
    #[arg(long)]
    pub force: bool,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Keys asked for per SCAN call: the most work one call costs the server.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub count: u32,
    /// Repeat every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many rounds.
    #[arg(long, requires = "watch", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
}

fn parse_handler(s: &str) -> Result<SerializeHandler, String> {
    s.parse()
        .map_err(|e: stickless::php::UnsupportedHandler| e.to_string())
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.1..=86_400.0).contains(&secs) {
        return Err(format!("{secs} s is out of range; expected 0.1 to 86400"));
    }
    Ok(Duration::from_secs_f64(secs))
}
