//! Runs every `.phpt` under tests/php with PHP's own run-tests.php against a
//! Redis server of its own: once as Debian configures PHP, once with
//! upstream PHP's defaults (those of the official images).

use std::process::Command;
use std::sync::Mutex;

use stickless_e2e::{RedisServer, ext, php_binary, php_version, run_tests_php, workspace};

/// Tests that change session.* settings at run time, which PHP 8.2.36 refuses
/// while session.upload_progress.enabled is on (8.4.27 does not); each says
/// so in its --SKIPIF--.
const SKIPPED_WITH_UPLOAD_PROGRESS: &[&str] = &[
    "008-invalid-id",
    "009-redis-down",
    "010-bad-config",
    "013-lock-timeout",
    "015-class-handler",
    "017-phpinfo",
    "018-ini-and-query",
    "019-create-sid",
    "024-encryption",
    "026-secrets",
    "028-short-ids",
    "032-merge-object-outside-session",
];

/// run-tests.php writes each test's script next to it, so two runs over
/// tests/php must take turns.
static SUITE_DIR: Mutex<()> = Mutex::new(());

/// Runs the suite with `ini` on run-tests.php's command line and returns its
/// output, after checking that nothing failed, borked or warned.
fn run_suite(ini: &[&str]) -> String {
    let _turn = SUITE_DIR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let redis = RedisServer::start();
    let dir = workspace().join("tests/php");
    let mut cmd = Command::new("php");
    cmd.arg(run_tests_php())
        .args(["-n", "-q", "--show-diff", "-j2"])
        .arg("-d")
        .arg(format!("extension={}", ext().display()))
        .args(["-d", "error_reporting=-1"]);
    for setting in ini {
        cmd.args(["-d", setting]);
    }
    let out = cmd
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
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("Tests passed"),
        "no summary from run-tests.php"
    );
    for bad in [
        "Tests failed    :",
        "Tests borked    :",
        "Tests warned    :",
    ] {
        // "Tests failed    :    0 (  0.0%) ...": the width varies by PHP.
        if let Some(line) = stdout.lines().find(|l| l.starts_with(bad)) {
            let count = line[bad.len()..].split_whitespace().next();
            assert_eq!(count, Some("0"), "{line}");
        }
    }
    assert!(
        out.status.success(),
        "run-tests.php exited with {}",
        out.status
    );
    stdout
}

/// The names of the tests run-tests.php reports as skipped: "SKIP <title>
/// [php/<name>.phpt] reason: ...", after progress output and colour codes.
fn skipped(stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.find("SKIP").map(|at| &l[at..]))
        .filter_map(|l| l.split_whitespace().find(|w| w.ends_with(".phpt]")))
        .filter_map(|w| w.strip_suffix(".phpt]")?.rsplit('/').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// 019 sets session.sid_length and session.sid_bits_per_character, which
/// PHP 8.4 deprecates; 029 checks the defaults everywhere.
fn skipped_for_this_php() -> Vec<&'static str> {
    let version = php_version();
    let newer_than_8_3 = version
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)))
        .is_some_and(|v| v >= (8, 4));
    if newer_than_8_3 {
        vec!["019-create-sid"]
    } else {
        Vec::new()
    }
}

#[test]
fn phpt_suite_passes_with_every_diagnostic_on() {
    let stdout = run_suite(&[]);
    assert_eq!(skipped(&stdout), skipped_for_this_php());
}

/// Whether this PHP refuses run-time session.* changes while upload
/// progress is on, as tests/php/inc/setup.inc finds out.
fn session_ini_locked_by_upload_progress() -> bool {
    let out = Command::new(php_binary())
        .args(["-n", "-d", "session.upload_progress.enabled=1", "-r"])
        .arg(r#"try { ini_set("session.cache_expire", "180"); echo "free"; } catch (Error) { echo "locked"; }"#)
        .output()
        .expect("php runs");
    String::from_utf8_lossy(&out.stdout) == "locked"
}

/// Upstream PHP turns upload progress on (Debian turns it off). Where that
/// makes every run-time change of a session.* setting fatal, the rest of the
/// suite, re-executed with its settings from startup (tests/php/inc/setup.inc),
/// must pass unchanged; elsewhere all of it must.
#[test]
fn phpt_suite_passes_with_upstream_defaults() {
    let stdout = run_suite(&["session.upload_progress.enabled=1"]);
    let mut expected = skipped_for_this_php();
    if session_ini_locked_by_upload_progress() {
        expected.extend(SKIPPED_WITH_UPLOAD_PROGRESS);
        expected.sort_unstable();
        expected.dedup();
    }
    assert_eq!(skipped(&stdout), expected);
}
