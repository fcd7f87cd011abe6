//! Every tunable, its default, and how one is set from ini or the URL query.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Secret};
use crate::compress::Compression;
use crate::crypto::KeyRing;
use crate::legacy::Legacy;

/// What to do when the lock wait runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLockTimeout {
    /// `session_start()` fails with a warning.
    Fail,
    /// The session opens with its current data; writes are refused with a warning.
    Readonly,
}

/// When a write counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// When the primary has applied it (Redis's usual asynchronous replication).
    Primary,
    /// When at least one replica has acknowledged it too (`WAIT 1`); a write
    /// no replica acknowledges within `timeout_ms` reports an error. Such a
    /// write survives the loss of its primary.
    Replica,
}

/// How requests of one user share a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// One request at a time: each holds the session's lock from read to write.
    #[default]
    Lock,
    /// Requests run side by side: each reads without a lock and writes with a
    /// compare-and-set on the revision, replaying the top-level keys it
    /// changed onto a value another request wrote meanwhile (see `merge`).
    Merge,
}

impl Concurrency {
    /// `lock` or `merge`, as ini and the URL query spell it.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "lock" => Some(Self::Lock),
            "merge" => Some(Self::Merge),
            _ => None,
        }
    }
}

/// TLS material, read from files when a connection opens (so rotated
/// certificates are picked up without a restart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA bundle to verify servers with; the system store when unset.
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (`tls-auth-clients`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Skip certificate verification. For tests only: it lets anyone on the
    /// path read and change sessions.
    pub insecure: bool,
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
    /// The most one step (connects, commands, retries) may take before it
    /// fails; retries through a failover or reconnect happen within it.
    pub budget: Duration,
    /// When a write counts as done.
    pub durability: Durability,
    /// Largest payload accepted, in bytes.
    pub max_size: usize,
    /// Most requests that may queue for one session's lock; more are refused
    /// at once, so one hot session cannot tie up every worker.
    pub max_waiters: u32,
    /// Keys for encryption at rest; `None` stores payloads in clear.
    pub encryption_keys: Option<KeyRing>,
    /// The codec payloads are compressed with before they are encrypted.
    /// Reads decode every codec whatever this says.
    pub compression: Compression,
    /// Payloads shorter than this many bytes are stored uncompressed.
    pub compression_threshold: usize,
    /// ACL user name when the URL carries none.
    pub username: Option<String>,
    /// Redis password when the URL carries none (read from `env:` or `file:`).
    pub password: Option<Secret>,
    /// ACL user name for the sentinels, when they require one.
    pub sentinel_username: Option<String>,
    /// Password for the sentinels (`requirepass` in sentinel.conf).
    pub sentinel_password: Option<Secret>,
    /// TLS files and verification, for `rediss` schemes.
    pub tls: TlsFiles,
    /// Make PHP's `session.use_strict_mode` the default (PHP extension only).
    pub strict_mode: bool,
    /// Whether a request locks its session or merges its changes (PHP
    /// extension; a Rust service picks the store's method per call).
    pub concurrency: Concurrency,
    /// `compat=phpredis[:prefix]`: read and write phpredis's own keys and
    /// honour its lock, for the mixed fleet of a rolling migration.
    pub compat: Option<Legacy>,
    /// `import=phpredis[:prefix]` or `import=symfony[:prefix]`: on a miss,
    /// move the session from the old handler's key into the native format.
    pub import: Option<Legacy>,
    /// How often a request polls a lock held by a phpredis pod (`compat`
    /// and `import` only; phpredis pods take no part in the queue).
    pub legacy_lock_poll: Duration,
    /// An unchanged session whose remaining lifetime is within this of
    /// full is not refreshed by a touch (only its lock is released); at
    /// most half the lifetime counts. Zero refreshes on every touch.
    pub touch_interval: Duration,
}

/// Every option with its default, as ini (`stickless.<name>`) and the
/// save_path query spell them. The one place defaults are written down.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("prefix", "stickless:"),
    ("lock_wait_ms", "5000"),
    ("lock_ttl_ms", "3000"),
    ("on_lock_timeout", "fail"),
    ("connect_timeout_ms", "500"),
    ("timeout_ms", "1000"),
    ("budget_ms", "1500"),
    ("durability", "primary"),
    ("max_size", "4194304"),
    ("max_waiters", "32"),
    ("encryption_keys", ""),
    ("compression", "none"),
    ("compression_threshold", "1024"),
    ("username", ""),
    ("password", ""),
    ("sentinel_username", ""),
    ("sentinel_password", ""),
    ("tls_ca", ""),
    ("tls_cert", ""),
    ("tls_key", ""),
    ("tls_insecure", "0"),
    ("strict_mode", "1"),
    ("concurrency", "lock"),
    ("compat", ""),
    ("import", ""),
    ("legacy_lock_poll_ms", "10"),
    ("touch_interval_ms", "60000"),
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
            budget: Duration::ZERO,
            durability: Durability::Primary,
            max_size: 0,
            max_waiters: 0,
            encryption_keys: None,
            compression: Compression::None,
            compression_threshold: 0,
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            tls: TlsFiles::default(),
            strict_mode: true,
            concurrency: Concurrency::Lock,
            compat: None,
            import: None,
            legacy_lock_poll: Duration::ZERO,
            touch_interval: Duration::ZERO,
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
            "budget_ms" => self.budget = millis(name, value, 1, 600_000)?,
            "touch_interval_ms" => self.touch_interval = millis(name, value, 0, 86_400_000)?,
            "on_lock_timeout" => {
                self.on_lock_timeout = match value {
                    "fail" => OnLockTimeout::Fail,
                    "readonly" => OnLockTimeout::Readonly,
                    _ => return Err(invalid(name, value, "`fail` or `readonly`")),
                }
            }
            "durability" => {
                self.durability = match value {
                    "primary" | "" => Durability::Primary,
                    "replica" => Durability::Replica,
                    _ => return Err(invalid(name, value, "`primary` or `replica`")),
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
            "concurrency" => {
                self.concurrency = Concurrency::parse(value)
                    .ok_or_else(|| invalid(name, value, "`lock` or `merge`"))?;
            }
            "compression" => {
                self.compression = Compression::parse(&value.to_ascii_lowercase())
                    .ok_or_else(|| invalid(name, value, "`zstd`, `lz4` or `none`"))?;
            }
            "compression_threshold" => {
                self.compression_threshold = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 512 * 1024 * 1024)
                    .ok_or_else(|| invalid(name, value, "bytes from 0 to 536870912"))?;
            }
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
            "username" => self.username = non_empty(value),
            "password" => self.password = resolve_secret(name, value)?,
            "sentinel_username" => self.sentinel_username = non_empty(value),
            "sentinel_password" => self.sentinel_password = resolve_secret(name, value)?,
            "tls_ca" => self.tls.ca = non_empty(value).map(PathBuf::from),
            "tls_cert" => self.tls.cert = non_empty(value).map(PathBuf::from),
            "tls_key" => self.tls.key = non_empty(value).map(PathBuf::from),
            "tls_insecure" => self.tls.insecure = flag(name, value)?,
            "compat" => {
                self.compat = match Legacy::parse(value) {
                    Some(legacy) if legacy.source.locks() => Some(legacy),
                    None if value.is_empty() || value == "none" => None,
                    _ => {
                        return Err(invalid(
                            name,
                            value,
                            "`phpredis`, `phpredis:<prefix>` or `none`",
                        ));
                    }
                }
            }
            "import" => {
                self.import = match Legacy::parse(value) {
                    Some(legacy) => Some(legacy),
                    None if value.is_empty() || value == "none" => None,
                    None => {
                        return Err(invalid(
                            name,
                            value,
                            "`phpredis[:<prefix>]`, `symfony[:<prefix>]` or `none`",
                        ));
                    }
                }
            }
            "legacy_lock_poll_ms" => self.legacy_lock_poll = millis(name, value, 1, 1000)?,
            _ => return Err(ConfigError::UnknownOption(name.to_owned())),
        }
        Ok(())
    }
}

fn non_empty(value: &str) -> Option<String> {
    Some(value.to_owned()).filter(|v| !v.is_empty())
}

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
        expected,
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
