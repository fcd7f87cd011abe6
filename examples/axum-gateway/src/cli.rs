//! Command line and environment: the same settings the PHP pods run with.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use stickless::Config;
use stickless::aio::Store;
use stickless::php::SerializeHandler;

use crate::cookie::CookieName;

/// Reads and updates the sessions of PHP pods (stickless save handler) from
/// an axum service: `GET /api/me`, `POST /api/cart`, `GET /api/healthz`.
///
/// Every option can also come from the environment; the save path is best
/// passed that way when it holds a password, so it stays out of `ps`.
#[derive(Debug, Parser)]
#[command(name = "axum-gateway", version)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The PHP pods' session.save_path, e.g. redis://10.0.0.5:6379/0?prefix=myapp:
    #[arg(long, env = "GATEWAY_SAVE_PATH", hide_env_values = true)]
    pub save_path: String,

    /// How the PHP side stores session data: its session.serialize_handler
    /// (php or php_serialize), or laravel_php / laravel_json for Laravel.
    #[arg(long, env = "GATEWAY_SERIALIZE_HANDLER", default_value = "php")]
    pub serialize_handler: SerializeHandler,

    /// The PHP pods' session.gc_maxlifetime, in seconds: how long a session
    /// this service writes lives on, as one PHP writes would.
    #[arg(long, env = "GATEWAY_GC_MAXLIFETIME", default_value_t = 1440,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub gc_maxlifetime: u64,

    /// The PHP pods' session.name: the cookie that carries the session ID.
    #[arg(long, env = "GATEWAY_COOKIE", default_value_t = CookieName::default())]
    pub cookie: CookieName,
}

impl Cli {
    /// The store these settings describe. Does no I/O.
    pub fn store(&self) -> Result<Store, stickless::ConfigError> {
        let config = Config::parse(&self.save_path)?;
        Ok(Store::with_php(
            config,
            self.serialize_handler,
            Duration::from_secs(self.gc_maxlifetime),
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn takes_what_php_is_configured_with() {
        let cli = Cli::try_parse_from([
            "axum-gateway",
            "--listen",
            "127.0.0.1:9000",
            "--save-path",
            "redis://127.0.0.1:6379/0?prefix=demo:",
            "--serialize-handler",
            "php_serialize",
            "--cookie",
            "app_sid",
        ])
        .expect("valid arguments");
        assert_eq!(cli.listen.port(), 9000);
        assert_eq!(cli.serialize_handler, SerializeHandler::PhpSerialize);
        assert_eq!(cli.cookie.as_str(), "app_sid");
        assert_eq!(cli.gc_maxlifetime, 1440);
        let store = cli.store().expect("a valid save path");
        assert_eq!(store.config().settings.prefix, "demo:");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let base = ["axum-gateway", "--save-path", "redis://127.0.0.1/0"];
        for extra in [
            &["--serialize-handler", "igbinary"][..],
            &["--cookie", "bad name"],
            &["--gc-maxlifetime", "0"],
            &["--listen", "localhost"],
        ] {
            let args = base.iter().chain(extra);
            assert!(Cli::try_parse_from(args).is_err(), "{extra:?}");
        }
        let cli = Cli::try_parse_from(["axum-gateway", "--save-path", "memcached://x"])
            .expect("parsed; checked when the store is built");
        assert!(cli.store().is_err());
    }
}
