//! The session handlers under test and how the stack runs each.

use std::path::{Path, PathBuf};

/// One handler configuration, as the stack script takes it.
#[derive(Debug, Clone)]
pub struct Handler {
    /// Name in tables and JSON.
    pub name: &'static str,
    /// Environment for deploy/local/stack.sh.
    pub env: Vec<(&'static str, String)>,
    /// Sessions live in Redis (commands and server CPU can be read from it).
    pub redis: bool,
    /// What the handler's module version must start with, as the pods'
    /// healthz reports it: an ini file loading another build first would
    /// otherwise go unnoticed.
    pub module_version: Option<&'static str>,
    /// `concurrency=merge`: parallel requests of one user run side by side,
    /// so the correctness cases give each request in flight a key of its
    /// own (a shared counter would be a conflict by design).
    pub merge: bool,
}

/// phpredis 6.x as scripts/build-phpredis.sh builds it: the module, and
/// php-fpm's conf.d without Debian's own phpredis (both cannot be loaded).
#[derive(Debug, Clone)]
pub struct Phpredis6 {
    pub module: PathBuf,
    pub scan_dir: PathBuf,
}

impl Phpredis6 {
    /// Where scripts/build-phpredis.sh leaves them under `target`.
    pub fn under(target: &Path) -> Self {
        Self {
            module: target.join("phpredis/current/redis.so"),
            scan_dir: target.join("phpredis/fpm-conf.d"),
        }
    }

    pub fn is_built(&self) -> bool {
        self.module.is_file() && self.scan_dir.is_dir()
    }
}

/// Every handler the benchmark knows, in table order. `phpredis-lock` is
/// the baseline of the ratios, `phpredis62-lock` the second one.
pub fn all(extension: &Path, phpredis6: &Phpredis6) -> Vec<Handler> {
    let stickless = |name, query: &str| stickless(extension, name, query);
    let phpredis = |name, defines: &str| Handler {
        name,
        env: vec![
            ("SESSION_HANDLER", "redis".into()),
            // stack.sh's default, spelt out so that --rtt-ms can point it
            // at the delay proxy.
            (
                "SESSION_SAVE_PATH",
                "tcp://127.0.0.1:{redis_port}?prefix=bench:".into(),
            ),
            // phpredis's own defaults otherwise: what its users get.
            ("PHP_DEFINES", defines.into()),
        ],
        redis: true,
        module_version: None,
        merge: false,
    };
    let phpredis6 = |name, defines: &str| {
        let mut h = phpredis(name, defines);
        h.env.extend([
            ("PHP_INI_SCAN_DIR", phpredis6.scan_dir.display().to_string()),
            ("PHP_EXTENSION", phpredis6.module.display().to_string()),
        ]);
        h.module_version = Some("6.2.");
        h
    };
    vec![
        stickless("stickless", ""),
        stickless(
            "stickless-encrypted",
            "&encryption_keys=bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        stickless("stickless-zstd", "&compression=zstd"),
        Handler {
            merge: true,
            ..stickless("stickless-merge", "&concurrency=merge")
        },
        phpredis("phpredis-lock", "redis.session.locking_enabled=1"),
        phpredis6("phpredis62-lock", "redis.session.locking_enabled=1"),
        phpredis6(
            "phpredis62-zstd",
            "redis.session.locking_enabled=1 redis.session.compression=zstd",
        ),
        phpredis("phpredis-nolock", "redis.session.locking_enabled=0"),
        Handler {
            name: "memcached-lock",
            env: vec![("SESSION_HANDLER", "memcached".into())],
            redis: false,
            module_version: None,
            merge: false,
        },
        Handler {
            name: "files-per-pod",
            env: vec![("SESSION_HANDLER", "files".into())],
            redis: false,
            module_version: None,
            merge: false,
        },
    ]
}

/// Handlers run only when `--handlers` names them: variants whose figures
/// answer one question, not needed in every run.
pub fn opt_in(extension: &Path) -> Vec<Handler> {
    vec![stickless(extension, "stickless-lz4", "&compression=lz4")]
}

/// stickless with `query` appended to its save path.
fn stickless(extension: &Path, name: &'static str, query: &str) -> Handler {
    Handler {
        name,
        env: vec![
            ("SESSION_HANDLER", "stickless".into()),
            ("PHP_EXTENSION", extension.display().to_string()),
            (
                "SESSION_SAVE_PATH",
                format!("redis://127.0.0.1:{{redis_port}}/0?prefix=bench:{query}"),
            ),
        ],
        redis: true,
        module_version: None,
        merge: false,
    }
}

/// The ratios' baseline: phpredis with locking, as Debian 12 ships it (5.3.7).
pub const BASELINE: &str = "phpredis-lock";

/// The second baseline: phpredis's current line (6.2) with locking.
pub const BASELINE_6: &str = "phpredis62-lock";

/// Whether `name` is one of the phpredis 6 handlers.
pub fn needs_phpredis6(name: &str) -> bool {
    name.starts_with("phpredis62-")
}
