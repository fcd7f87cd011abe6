//! The session handlers under test and how the stack runs each.

use std::path::Path;

/// One handler configuration, as the stack script takes it.
#[derive(Debug, Clone)]
pub struct Handler {
    /// Name in tables and JSON.
    pub name: &'static str,
    /// Environment for deploy/local/stack.sh.
    pub env: Vec<(&'static str, String)>,
    /// Sessions live in Redis (commands and server CPU can be read from it).
    pub redis: bool,
}

/// Every handler the benchmark knows, in table order. `phpredis-lock` is
/// the baseline of the ratios.
pub fn all(extension: &Path) -> Vec<Handler> {
    let stickless = |name, query: &str| stickless(extension, name, query);
    let phpredis = |name, locking: u8| Handler {
        name,
        env: vec![
            ("SESSION_HANDLER", "redis".into()),
            // stack.sh's default, spelt out so that --rtt-ms can point it
            // at the delay proxy.
            (
                "SESSION_SAVE_PATH",
                "tcp://127.0.0.1:{redis_port}?prefix=bench:".into(),
            ),
            (
                "PHP_DEFINES",
                // phpredis's own defaults otherwise: what its users get.
                format!("redis.session.locking_enabled={locking}"),
            ),
        ],
        redis: true,
    };
    vec![
        stickless("stickless", ""),
        stickless(
            "stickless-encrypted",
            "&encryption_keys=bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        stickless("stickless-zstd", "&compression=zstd"),
        phpredis("phpredis-lock", 1),
        phpredis("phpredis-nolock", 0),
        Handler {
            name: "memcached-lock",
            env: vec![("SESSION_HANDLER", "memcached".into())],
            redis: false,
        },
        Handler {
            name: "files-per-pod",
            env: vec![("SESSION_HANDLER", "files".into())],
            redis: false,
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
    }
}

/// The ratios' baseline.
pub const BASELINE: &str = "phpredis-lock";
