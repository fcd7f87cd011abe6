//! Configuration: one parser for the save_path URL and its options, shared by
//! the PHP extension (ini + save_path) and Rust callers.
//!
//! ```
//! use stickless::Config;
//! let cfg = Config::parse("redis://:s3cret@127.0.0.1:6390/2?prefix=app:&lock_wait_ms=2000").unwrap();
//! assert_eq!(cfg.settings.prefix, "app:");
//! assert_eq!(cfg.settings.lock_wait.as_millis(), 2000);
//! // The password never shows in what warnings print.
//! assert_eq!(cfg.server.to_string(), "redis://127.0.0.1:6390/2");
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::crypto::KeyRing;

/// A configuration error that names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The save_path is not a URL at all.
    #[error("save_path is not a valid URL ({0}); expected e.g. redis://127.0.0.1:6379/0")]
    Url(String),
    /// A scheme this build does not serve.
    #[error(
        "save_path scheme `{0}` is not supported; use redis://, rediss:// or unix:///path/to/redis.sock"
    )]
    Scheme(String),
    /// A URL part that is missing or wrong.
    #[error("save_path {part} is invalid: {reason}")]
    Part {
        /// `host`, `port`, `database`, ...
        part: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An option name nobody knows.
    #[error("unknown option `{0}`; see docs/CONFIGURATION.md for the list")]
    UnknownOption(String),
    /// A secret option (a password, encryption keys) that could not be read or
    /// parsed. Never carries the secret itself.
    #[error("option `{name}`: {reason}")]
    Secret {
        /// Option name.
        name: String,
        /// What went wrong, without the value.
        reason: String,
    },
    /// An option whose value does not parse or is out of range.
    #[error("option `{name}` has invalid value `{value}`: expected {expected}")]
    InvalidValue {
        /// Option name.
        name: String,
        /// The value as given (never for secrets).
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

/// A secret string (a password): redacted in `Debug` and never displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for handing to the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a single Redis server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP, optionally with TLS.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// `rediss://`.
        tls: bool,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// Which Redis deployment to talk to. Cluster and Sentinel add variants here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a primary behind a stable address).
    Standalone(Endpoint),
}

/// The server side of the configuration: topology, credentials, database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Where to connect.
    pub topology: Topology,
    /// ACL user name (Redis 6+), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Database index.
    pub db: i64,
}

impl fmt::Display for Server {
    /// The server as warnings name it: no credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.topology {
            Topology::Standalone(Endpoint::Tcp { host, port, tls }) => {
                let scheme = if *tls { "rediss" } else { "redis" };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "{scheme}://{host}:{port}/{}", self.db)
            }
            Topology::Standalone(Endpoint::Unix(path)) => {
                write!(f, "unix://{}?db={}", path.display(), self.db)
            }
        }
    }
}

/// What to do when the lock wait runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLockTimeout {
    /// `session_start()` fails with a warning.
    Fail,
    /// The session opens with its current data; writes are refused with a warning.
    Readonly,
}

/// Every tunable, with the documented defaults (docs/CONFIGURATION.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Prepended to every key.
    pub prefix: String,
    /// Longest wait for another request's lock.
    pub lock_wait: Duration,
    /// Lease of a held lock; it always expires, even when max_execution_time=0.
    pub lock_ttl: Duration,
    /// What happens when `lock_wait` runs out.
    pub on_lock_timeout: OnLockTimeout,
    /// TCP/Unix connect budget.
    pub connect_timeout: Duration,
    /// Budget for each command's reply.
    pub timeout: Duration,
    /// Largest payload accepted, in bytes.
    pub max_size: usize,
    /// Most requests that may queue for one session's lock; more are refused
    /// at once, so one hot session cannot tie up every worker.
    pub max_waiters: u32,
    /// Keys for encryption at rest; `None` stores payloads in clear.
    pub encryption_keys: Option<KeyRing>,
    /// Redis password when the URL carries none (read from `env:` or `file:`).
    pub password: Option<Secret>,
    /// Make PHP's `session.use_strict_mode` the default (PHP extension only).
    pub strict_mode: bool,
}

/// Every option with its default, as ini (`stickless.<name>`) and the
/// save_path query spell them. The one place defaults are written down.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("prefix", "stickless:"),
    ("lock_wait_ms", "5000"),
    ("lock_ttl_ms", "30000"),
    ("on_lock_timeout", "fail"),
    ("connect_timeout_ms", "500"),
    ("timeout_ms", "1000"),
    ("max_size", "4194304"),
    ("max_waiters", "32"),
    ("encryption_keys", ""),
    ("password", ""),
    ("strict_mode", "1"),
];

impl Default for Settings {
    fn default() -> Self {
        let mut s = Self {
            prefix: String::new(),
            lock_wait: Duration::ZERO,
            lock_ttl: Duration::ZERO,
            on_lock_timeout: OnLockTimeout::Fail,
            connect_timeout: Duration::ZERO,
            timeout: Duration::ZERO,
            max_size: 0,
            max_waiters: 0,
            encryption_keys: None,
            password: None,
            strict_mode: true,
        };
        for (name, value) in DEFAULTS {
            // Covered by `defaults_parse`: the table is valid by construction.
            s.set(name, value).expect("built-in defaults are valid");
        }
        s
    }
}

impl Settings {
    /// Sets one option by name, as written in ini or in the URL query.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        match name {
            "prefix" => {
                if value.contains(['{', '}']) {
                    return Err(invalid(name, value, "a prefix without { or }"));
                }
                self.prefix = value.to_owned();
            }
            "lock_wait_ms" => self.lock_wait = millis(name, value, 0, 600_000)?,
            "lock_ttl_ms" => self.lock_ttl = millis(name, value, 100, 86_400_000)?,
            "connect_timeout_ms" => self.connect_timeout = millis(name, value, 1, 60_000)?,
            "timeout_ms" => self.timeout = millis(name, value, 1, 60_000)?,
            "on_lock_timeout" => {
                self.on_lock_timeout = match value {
                    "fail" => OnLockTimeout::Fail,
                    "readonly" => OnLockTimeout::Readonly,
                    _ => return Err(invalid(name, value, "`fail` or `readonly`")),
                }
            }
            "max_size" => {
                self.max_size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=512 * 1024 * 1024).contains(n))
                    .ok_or_else(|| invalid(name, value, "bytes from 1 to 536870912"))?;
            }
            "max_waiters" => {
                self.max_waiters = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| invalid(name, value, "a count from 1 to 100000"))?;
            }
            "strict_mode" => self.strict_mode = flag(name, value)?,
            "encryption_keys" => {
                self.encryption_keys =
                    match resolve_secret(name, value)? {
                        None => None,
                        Some(spec) => Some(KeyRing::parse(spec.expose()).map_err(|e| {
                            ConfigError::Secret {
                                name: name.to_owned(),
                                reason: e.to_string(),
                            }
                        })?),
                    }
            }
            "password" => self.password = resolve_secret(name, value)?,
            _ => return Err(ConfigError::UnknownOption(name.to_owned())),
        }
        Ok(())
    }
}

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// A save_path as it may be shown (phpinfo, logs): the URL's password and
/// inline secret options replaced by `***`; `env:` and `file:` references,
/// which are not secrets, kept.
///
/// ```
/// use stickless::config::redact;
/// assert_eq!(redact("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
/// assert_eq!(redact("redis://h?password=hunter2&prefix=a:"), "redis://h?password=***&prefix=a:");
/// assert_eq!(redact("redis://h?password=env:REDIS_PW"), "redis://h?password=env:REDIS_PW");
/// ```
pub fn redact(save_path: &str) -> String {
    let Ok(mut url) = Url::parse(save_path.trim()) else {
        // Not a URL (a directory of the files handler, say): nothing to hide.
        return save_path.to_owned();
    };
    if url.password().is_some() {
        // Fails only for URLs that cannot have a password at all.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                // `auth` is phpredis's spelling, for save paths shown while
                // migrating.
                let v = if SECRET_OPTIONS.contains(&k.as_ref()) || k == "auth" {
                    redact_option(&v)
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
    }
    url.to_string()
}

/// Options whose values are secrets.
pub const SECRET_OPTIONS: &[&str] = &["password", "encryption_keys"];

/// An option value as it may be shown: inline secrets become `***`.
pub fn redact_option(value: &str) -> String {
    if value.is_empty() || value.starts_with("env:") || value.starts_with("file:") {
        value.to_owned()
    } else {
        "***".to_owned()
    }
}

fn flag(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" | "" => Ok(false),
        _ => Err(invalid(name, value, "on or off")),
    }
}

/// A secret given inline, as `env:NAME` (an environment variable) or as
/// `file:/path` (a mounted Kubernetes Secret, say). Empty means none.
fn resolve_secret(name: &str, value: &str) -> Result<Option<Secret>, ConfigError> {
    let fail = |reason: String| ConfigError::Secret {
        name: name.to_owned(),
        reason,
    };
    let secret = if let Some(var) = value.strip_prefix("env:") {
        std::env::var(var).map_err(|_| fail(format!("environment variable `{var}` is not set")))?
    } else if let Some(path) = value.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read `{path}`: {e}")))?
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    } else {
        value.to_owned()
    };
    Ok(Some(Secret::new(secret)).filter(|s| !s.expose().is_empty()))
}

fn millis(name: &str, value: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Duration::from_millis)
        .ok_or_else(|| invalid(name, value, "whole milliseconds in range"))
}

/// A full configuration: where Redis is, and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Server, credentials, database.
    pub server: Server,
    /// Tunables.
    pub settings: Settings,
}

impl Config {
    /// Parses a save_path URL with default settings.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        Self::parse_with(url, Settings::default())
    }

    /// Parses a save_path URL on top of `base` settings (from ini); query
    /// parameters in the URL override them.
    pub fn parse_with(url: &str, base: Settings) -> Result<Self, ConfigError> {
        let url = url.trim();
        let parsed = Url::parse(url).map_err(|e| ConfigError::Url(e.to_string()))?;
        let mut settings = base;
        let mut db_from_query = None;
        for (k, v) in parsed.query_pairs() {
            if k == "db" || k == "database" {
                db_from_query = Some(parse_db(&v)?);
            } else {
                settings.set(&k, &v)?;
            }
        }
        let username = Some(decode(parsed.username(), "user name")?).filter(|u| !u.is_empty());
        let password = parsed
            .password()
            .map(|p| decode(p, "password"))
            .transpose()?
            .map(Secret::new);

        let (endpoint, db) = match parsed.scheme() {
            "redis" | "rediss" => {
                let host = match parsed.host() {
                    Some(url::Host::Ipv6(a)) => a.to_string(),
                    Some(h) => h.to_string(),
                    None => return Err(part("host", "missing")),
                };
                let port = parsed.port().unwrap_or(6379);
                let path = parsed.path().trim_matches('/');
                let db = if path.is_empty() { 0 } else { parse_db(path)? };
                let tls = parsed.scheme() == "rediss";
                (Endpoint::Tcp { host, port, tls }, db)
            }
            "unix" => {
                if parsed.path().is_empty() || parsed.path() == "/" {
                    return Err(part("socket path", "missing"));
                }
                let path = decode(parsed.path(), "socket path")?;
                (Endpoint::Unix(PathBuf::from(path)), 0)
            }
            other => return Err(ConfigError::Scheme(other.to_owned())),
        };
        let password = password.or_else(|| settings.password.clone());
        Ok(Self {
            server: Server {
                topology: Topology::Standalone(endpoint),
                username,
                password,
                db: db_from_query.unwrap_or(db),
            },
            settings,
        })
    }
}

fn part(part: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Part {
        part,
        reason: reason.into(),
    }
}

fn parse_db(s: &str) -> Result<i64, ConfigError> {
    s.parse::<i64>()
        .ok()
        .filter(|d| (0..=1_000_000).contains(d))
        .ok_or_else(|| part("database", format!("`{s}` is not a database number")))
}

fn decode(s: &str, what: &'static str) -> Result<String, ConfigError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| part(what, "is not valid UTF-8 after percent-decoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_with_everything() {
        let c = Config::parse(
            "rediss://app%40x:p%40ss@redis.local:7000/3?prefix=a:&lock_ttl_ms=9000&on_lock_timeout=readonly",
        )
        .unwrap();
        assert_eq!(
            c.server.topology,
            Topology::Standalone(Endpoint::Tcp {
                host: "redis.local".into(),
                port: 7000,
                tls: true
            })
        );
        assert_eq!(c.server.username.as_deref(), Some("app@x"));
        assert_eq!(c.server.password, Some(Secret::new("p@ss")));
        assert_eq!(c.server.db, 3);
        assert_eq!(c.settings.prefix, "a:");
        assert_eq!(c.settings.lock_ttl, Duration::from_millis(9000));
        assert_eq!(c.settings.on_lock_timeout, OnLockTimeout::Readonly);
    }

    #[test]
    fn defaults_and_ipv6() {
        let c = Config::parse("redis://[::1]").unwrap();
        assert_eq!(c.settings, Settings::default());
        assert_eq!(c.server.to_string(), "redis://[::1]:6379/0");
    }

    #[test]
    fn parses_unix_socket() {
        let c = Config::parse("unix:///run/redis/redis.sock?db=2&timeout_ms=50").unwrap();
        assert_eq!(
            c.server.topology,
            Topology::Standalone(Endpoint::Unix("/run/redis/redis.sock".into()))
        );
        assert_eq!(c.server.db, 2);
        assert_eq!(c.settings.timeout, Duration::from_millis(50));
    }

    #[test]
    fn query_overrides_base_settings() {
        let mut base = Settings::default();
        base.set("lock_wait_ms", "100").unwrap();
        base.set("prefix", "ini:").unwrap();
        let c = Config::parse_with("redis://h?lock_wait_ms=200", base).unwrap();
        assert_eq!(c.settings.lock_wait, Duration::from_millis(200));
        assert_eq!(c.settings.prefix, "ini:");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases: &[(&str, &str)] = &[
            ("not a url", "not a valid URL"),
            ("memcached://h", "scheme `memcached`"),
            ("redis://h/x", "database"),
            ("redis://h?lock_wait_ms=soon", "`lock_wait_ms`"),
            ("redis://h?colour=blue", "`colour`"),
            ("redis://h?on_lock_timeout=maybe", "`fail` or `readonly`"),
            ("redis://h?prefix=a{b}", "`prefix`"),
            ("unix://", "socket path"),
        ];
        for (url, needle) in cases {
            let err = Config::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn secrets_stay_hidden() {
        let c = Config::parse("redis://u:hunter2@h").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.server.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_come_from_env_and_files() {
        let dir = std::env::temp_dir().join(format!("stickless-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = Config::parse(&format!("redis://h?password=file:{}", file.display())).unwrap();
        assert_eq!(c.server.password, Some(Secret::new("from-file")));
        // A password in the URL wins over the option.
        let c = Config::parse(&format!(
            "redis://:inline@h?password=file:{}",
            file.display()
        ))
        .unwrap();
        assert_eq!(c.server.password, Some(Secret::new("inline")));
        let err = Config::parse("redis://h?password=env:STICKLESS_SURELY_UNSET").unwrap_err();
        assert!(err.to_string().contains("STICKLESS_SURELY_UNSET"), "{err}");
        let err = Config::parse("redis://h?encryption_keys=k:bm90LWEta2V5").unwrap_err();
        assert!(!err.to_string().contains("bm90"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::default();
        assert_eq!(s.prefix, "stickless:");
        assert_eq!(s.lock_wait, Duration::from_millis(5000));
        // A hung Redis must cost a request at most 1.5 s by default.
        assert!(s.connect_timeout + s.timeout <= Duration::from_millis(1500));
    }
}
