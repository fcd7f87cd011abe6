//! Runs every `.phpt` under tests/php with PHP's own run-tests.php against a
//! Redis server of its own.

use std::process::Command;

use stickless_e2e::{RedisServer, ext, php_binary, run_tests_php, workspace};

#[test]
fn phpt_suite_passes_with_every_diagnostic_on() {
    let redis = RedisServer::start();
    let dir = workspace().join("tests/php");
    let out = Command::new("php")
        .arg(run_tests_php())
        .args(["-n", "-q", "--show-diff", "-j2"])
        .arg("-d")
        .arg(format!("extension={}", ext().display()))
        .args(["-d", "error_reporting=-1"])
        .arg(&dir)
        .env(
            "STICKLESS_TEST_URL",
            format!("redis://127.0.0.1:{}/0", redis.port()),
        )
        .env("STICKLESS_TEST_EXT", ext())
        .env("TEST_PHP_EXECUTABLE", php_binary())
        .env("NO_INTERACTION", "1")
        .output()
        .expect("run-tests.php runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("Tests passed"),
        "no summary from run-tests.php"
    );
    for bad in [
        "Tests failed    :",
        "Tests borked    :",
        "Tests skipped   :",
        "Tests warned    :",
    ] {
        if let Some(line) = stdout.lines().find(|l| l.starts_with(bad)) {
            assert!(line.contains(":    0 "), "{line}");
        }
    }
    assert!(
        out.status.success(),
        "run-tests.php exited with {}",
        out.status
    );
}
