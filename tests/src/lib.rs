//! Harness for the cross-component tests: the extension under test, `php`
//! and `php-fpm` processes that load it, and the throw-away Redis servers
//! shared with the core crate's tests.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../crates/stickless/tests/support/mod.rs"]
mod redis_support;

pub use redis_support::{RedisServer, free_port};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// The extension under test: `STICKLESS_EXT`, or the release build.
pub fn ext() -> PathBuf {
    let path = std::env::var_os("STICKLESS_EXT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release/libstickless_php.so"));
    assert!(
        path.is_file(),
        "{} is missing: run `make build` (or `make test`, which builds first)",
        path.display()
    );
    path
}

/// `php` with only the extension under test loaded and every diagnostic on.
pub fn php() -> Command {
    let mut cmd = Command::new("php");
    cmd.arg("-n")
        .arg("-d")
        .arg(format!("extension={}", ext().display()))
        .args(["-d", "error_reporting=-1", "-d", "display_errors=stderr"])
        .args(["-d", "display_startup_errors=1", "-d", "log_errors=0"]);
    cmd
}

/// `php -r CODE` with `session.save_handler=stickless` on `url`.
pub fn php_session(url: &str, code: &str) -> Command {
    let mut cmd = php();
    cmd.args(["-d", "session.save_handler=stickless"])
        .arg("-d")
        .arg(format!("session.save_path=\"{url}\""))
        .args(["-d", "session.use_cookies=0", "-d", "session.cache_limiter="])
        .args(["-r", code]);
    cmd
}

/// PHP's own test runner, from php8.2-dev.
pub fn run_tests_php() -> PathBuf {
    let api = Command::new("php-config")
        .arg("--phpapi")
        .output()
        .expect("php-config (php8.2-dev) is installed");
    let api = String::from_utf8_lossy(&api.stdout).trim().to_owned();
    PathBuf::from(format!("/usr/lib/php/{api}/build/run-tests.php"))
}
