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

use percent_encoding::percent_decode_str;

mod save_path;
mod settings;

use save_path::{Parts, part};
pub use save_path::{SECRET_OPTIONS, redact, redact_option};
pub use settings::{Concurrency, DEFAULTS, Durability, OnLockTimeout, Settings, TlsFiles};

/// A configuration error that names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The save_path is not a URL at all.
    #[error("save_path is not a valid URL ({0}); expected e.g. redis://127.0.0.1:6379/0")]
    Url(String),
    /// A scheme this build does not serve.
    #[error(
        "save_path scheme `{0}` is not supported; use redis://, rediss://, redis+cluster://, redis+sentinel:// (each also as rediss+...) or unix:///path/to/redis.sock"
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
    /// Options that cannot be used together, or not on this topology.
    #[error("option `{option}` {reason}")]
    Conflict {
        /// The option at fault.
        option: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
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

/// A host and port (TCP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostPort {
    /// A host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where a single Redis server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP (with TLS when the server's `tls` is set).
    Tcp(HostPort),
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// Which Redis deployment to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a primary behind a stable address).
    Standalone(Endpoint),
    /// Redis Cluster: any reachable subset of its nodes, as seeds for the
    /// slot map.
    Cluster(Vec<HostPort>),
    /// A primary found through Sentinel.
    Sentinel {
        /// The sentinels, asked in order.
        sentinels: Vec<HostPort>,
        /// The monitored primary's name (`sentinel monitor <name> ...`).
        service: String,
    },
}

/// The server side of the configuration: topology, TLS, credentials, database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Where to connect.
    pub topology: Topology,
    /// TLS for every connection (`rediss` schemes), with its files.
    pub tls: Option<TlsFiles>,
    /// ACL user name (Redis 6+), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Credentials for the sentinels themselves, if they require any.
    pub sentinel_username: Option<String>,
    /// Password for the sentinels.
    pub sentinel_password: Option<Secret>,
    /// Database index (always 0 on a cluster).
    pub db: i64,
}

impl fmt::Display for Server {
    /// The server as warnings name it: no credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.tls.is_some() { "s" } else { "" };
        let list = |hosts: &[HostPort]| {
            hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            Topology::Standalone(Endpoint::Tcp(hp)) => write!(f, "redis{s}://{hp}/{}", self.db),
            Topology::Standalone(Endpoint::Unix(path)) => {
                write!(f, "unix://{}?db={}", path.display(), self.db)
            }
            Topology::Cluster(seeds) => write!(f, "redis{s}+cluster://{}", list(seeds)),
            Topology::Sentinel { sentinels, service } => {
                write!(f, "redis{s}+sentinel://{}/{service}", list(sentinels))?;
                if self.db != 0 {
                    write!(f, "?db={}", self.db)?;
                }
                Ok(())
            }
        }
    }
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
    ///
    /// ```
    /// use stickless::config::{Config, HostPort, Topology};
    /// let c = Config::parse("rediss+cluster://app:pw@10.0.0.1:7000,10.0.0.2?tls_ca=/etc/ca.pem")?;
    /// assert_eq!(
    ///     c.server.topology,
    ///     Topology::Cluster(vec![HostPort::new("10.0.0.1", 7000), HostPort::new("10.0.0.2", 6379)])
    /// );
    /// let c = Config::parse("redis+sentinel://s1,s2:26380/mymaster?db=2")?;
    /// assert_eq!(c.server.to_string(), "redis+sentinel://s1:26379,s2:26380/mymaster?db=2");
    /// # Ok::<(), stickless::ConfigError>(())
    /// ```
    pub fn parse_with(url: &str, base: Settings) -> Result<Self, ConfigError> {
        let parts = Parts::split(url.trim())?;
        // Userinfo and the query go through `url` for percent-decoding.
        let parsed = parts.single_host_url()?;
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

        let (base_scheme, tls) = match parts.scheme.split_once('+') {
            Some((base, kind)) => (base, Some(kind)),
            None => (parts.scheme, None),
        };
        let tls_on = match base_scheme {
            "redis" => false,
            "rediss" => true,
            "unix" if tls.is_none() => false,
            other => return Err(ConfigError::Scheme(other.to_owned())),
        };
        let path = parts.path.trim_matches('/');
        let (topology, db) = match (parts.scheme, tls) {
            ("unix", _) => {
                if parts.path.is_empty() || parts.path == "/" {
                    return Err(part("socket path", "missing"));
                }
                let path = decode(parts.path, "socket path")?;
                (Topology::Standalone(Endpoint::Unix(PathBuf::from(path))), 0)
            }
            (_, None) => {
                let mut hosts = parts.host_ports(6379)?;
                if hosts.len() > 1 {
                    return Err(part(
                        "host",
                        "several hosts need redis+cluster:// or redis+sentinel://",
                    ));
                }
                let db = if path.is_empty() { 0 } else { parse_db(path)? };
                (Topology::Standalone(Endpoint::Tcp(hosts.remove(0))), db)
            }
            (_, Some("cluster")) => {
                if !path.is_empty() && path != "0" {
                    return Err(part("database", "Redis Cluster has database 0 only"));
                }
                (Topology::Cluster(parts.host_ports(6379)?), 0)
            }
            (_, Some("sentinel")) => {
                if path.is_empty() || path.contains('/') {
                    return Err(part(
                        "service name",
                        "expected redis+sentinel://host:26379,.../<master name>",
                    ));
                }
                let service = decode(path, "service name")?;
                let sentinels = parts.host_ports(26379)?;
                (Topology::Sentinel { sentinels, service }, 0)
            }
            (scheme, Some(_)) => return Err(ConfigError::Scheme(scheme.to_owned())),
        };
        check_legacy(&settings, &topology)?;
        let db = db_from_query.unwrap_or(db);
        if matches!(topology, Topology::Cluster(_)) && db != 0 {
            return Err(part("database", "Redis Cluster has database 0 only"));
        }
        let tls = if tls_on {
            Some(settings.tls.clone())
        } else if settings.tls != TlsFiles::default() {
            return Err(part(
                "scheme",
                "tls_* options are set but the scheme has no TLS; use rediss://, rediss+cluster:// or rediss+sentinel://",
            ));
        } else {
            None
        };
        Ok(Self {
            server: Server {
                topology,
                tls,
                username: username.or_else(|| settings.username.clone()),
                password: password.or_else(|| settings.password.clone()),
                sentinel_username: settings.sentinel_username.clone(),
                sentinel_password: settings.sentinel_password.clone(),
                db,
            },
            settings,
        })
    }
}

/// `compat=phpredis` stores what phpredis stores: no envelope, so nothing
/// to record a codec or a key in; and phpredis locks only on one server.
fn check_legacy(settings: &Settings, topology: &Topology) -> Result<(), ConfigError> {
    if settings.compat.is_none() {
        return Ok(());
    }
    let conflict = |reason| {
        Err(ConfigError::Conflict {
            option: "compat",
            reason,
        })
    };
    if settings.import.is_some() {
        return conflict(
            "and `import` cannot be used together: compat=phpredis keeps sessions in phpredis's keys (the mixed fleet), import=phpredis moves them into stickless's (after the rollout)",
        );
    }
    if settings.encryption_keys.is_some() {
        return conflict(
            "stores phpredis's raw values, which phpredis pods must read: remove encryption_keys until the rollout is done and compat is replaced by import",
        );
    }
    if settings.compression != crate::Compression::None {
        return conflict(
            "stores phpredis's raw values, which phpredis pods must read: set compression=none until the rollout is done and compat is replaced by import",
        );
    }
    if matches!(topology, Topology::Cluster(_)) {
        return conflict(
            "needs one server or Sentinel: phpredis's lock key lives in another cluster slot than its session, and phpredis's rediscluster handler takes no lock; on a cluster switch straight to import=phpredis (docs/MIGRATION.md)",
        );
    }
    Ok(())
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn compat_refuses_what_phpredis_pods_could_not_read() {
        for (query, says) in [
            ("compat=phpredis&compression=zstd", "compression=none"),
            (
                "compat=phpredis&encryption_keys=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "encryption_keys",
            ),
            ("compat=phpredis&import=phpredis", "cannot be used together"),
            ("compat=memcached", "phpredis"),
            ("import=files", "symfony"),
        ] {
            let err = Config::parse(&format!("redis://127.0.0.1:1/0?{query}"))
                .expect_err(query)
                .to_string();
            assert!(err.contains(says), "{query}: {err}");
        }
        let err = Config::parse("redis+cluster://127.0.0.1:1?compat=phpredis")
            .expect_err("cluster")
            .to_string();
        assert!(err.contains("import=phpredis"), "{err}");
        let c = Config::parse("redis+cluster://127.0.0.1:1?import=phpredis:app_").unwrap();
        let import = c.settings.import.expect("import");
        assert_eq!(import.prefix, "app_");
        let c = Config::parse("redis://h?compat=phpredis").unwrap();
        assert_eq!(
            c.settings.compat.expect("compat").prefix,
            "PHPREDIS_SESSION:"
        );
    }

    #[test]
    fn parses_tcp_with_everything() {
        let c = Config::parse(
            "rediss://app%40x:p%40ss@redis.local:7000/3?prefix=a:&lock_ttl_ms=9000&on_lock_timeout=readonly",
        )
        .unwrap();
        assert_eq!(
            c.server.topology,
            Topology::Standalone(Endpoint::Tcp(HostPort::new("redis.local", 7000)))
        );
        assert_eq!(c.server.tls, Some(TlsFiles::default()));
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
            ("redis://a,b", "redis+cluster://"),
            ("redis+cluster://a/3", "database 0 only"),
            ("redis+cluster://a?db=1", "database 0 only"),
            ("redis+cluster://", "host"),
            ("redis+cluster://a,,b", "empty entry"),
            ("redis+sentinel://s1,s2", "master name"),
            ("redis+sentinel://s1/a/b", "master name"),
            ("redis+memcached://a", "scheme `redis+memcached`"),
            ("unix+cluster:///x", "scheme `unix`"),
            ("redis://h?tls_ca=/ca.pem", "rediss://"),
            ("redis://h?durability=all", "`primary` or `replica`"),
            ("redis://h?budget_ms=0", "`budget_ms`"),
            ("redis://h?compression=gzip", "`zstd`, `lz4` or `none`"),
            (
                "redis://h?compression_threshold=1k",
                "`compression_threshold`",
            ),
        ];
        for (url, needle) in cases {
            let err = Config::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn compression_is_off_by_default_and_set_by_the_query() {
        let cfg = Config::parse("redis://h").unwrap();
        assert_eq!(cfg.settings.compression, crate::Compression::None);
        assert_eq!(cfg.settings.compression_threshold, 1024);
        let cfg = Config::parse("redis://h?compression=ZSTD&compression_threshold=0").unwrap();
        assert_eq!(cfg.settings.compression, crate::Compression::Zstd);
        assert_eq!(cfg.settings.compression_threshold, 0);
        let cfg = Config::parse("redis://h?compression=lz4").unwrap();
        assert_eq!(cfg.settings.compression, crate::Compression::Lz4);
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
    fn parses_cluster_and_sentinel() {
        let c = Config::parse(
            "rediss+cluster://app:pw@h1:7000,[::1]:7001,h3?tls_ca=/ca.pem&tls_cert=/c.pem&tls_key=/k.pem",
        )
        .unwrap();
        assert_eq!(
            c.server.topology,
            Topology::Cluster(vec![
                HostPort::new("h1", 7000),
                HostPort::new("::1", 7001),
                HostPort::new("h3", 6379)
            ])
        );
        let tls = c.server.tls.clone().unwrap();
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(tls.cert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert!(!tls.insecure);
        assert_eq!(c.server.username.as_deref(), Some("app"));
        assert_eq!(
            c.server.to_string(),
            "rediss+cluster://h1:7000,[::1]:7001,h3:6379"
        );

        let c = Config::parse(
            "redis+sentinel://s1,s2:26380/my%20primary?db=3&username=app&password=x&sentinel_password=y",
        )
        .unwrap();
        assert_eq!(
            c.server.topology,
            Topology::Sentinel {
                sentinels: vec![HostPort::new("s1", 26379), HostPort::new("s2", 26380)],
                service: "my primary".into()
            }
        );
        assert_eq!(c.server.db, 3);
        assert_eq!(c.server.username.as_deref(), Some("app"));
        assert_eq!(c.server.password, Some(Secret::new("x")));
        assert_eq!(c.server.sentinel_password, Some(Secret::new("y")));
        assert!(!format!("{c:?} {}", c.server).contains("\"y\""));
    }

    #[test]
    fn durability_and_budget() {
        let c = Config::parse("redis://h?durability=replica&budget_ms=4000").unwrap();
        assert_eq!(c.settings.durability, Durability::Replica);
        assert_eq!(c.settings.budget, Duration::from_millis(4000));
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::default();
        assert_eq!(s.prefix, "stickless:");
        assert_eq!(s.lock_wait, Duration::from_millis(5000));
        // A hung Redis must cost a request at most 1.5 s by default, and the
        // first attempt of a step fits inside the budget.
        assert_eq!(s.budget, Duration::from_millis(1500));
        assert!(s.connect_timeout + s.timeout <= s.budget);
        assert_eq!(s.durability, Durability::Primary);
    }
}
