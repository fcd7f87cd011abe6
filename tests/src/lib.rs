//! Harness for the cross-component tests: the extension under test, `php`
//! and `php-fpm` processes that load it, and the throw-away Redis servers
//! shared with the core crate's tests.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../crates/stickless/tests/support/mod.rs"]
mod redis_support;

pub use redis_support::cluster::RedisCluster;
pub use redis_support::deployment::{Client, Deployment};
pub use redis_support::sentinel::SentinelSet;
pub use redis_support::{RedisServer, blocked_clients, free_port};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (scripts/platform.sh sets
/// one per Debian suite), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace().join(dir),
        _ => workspace().join("target"),
    }
}

/// The extension under test: `STICKLESS_EXT`, or the release build.
pub fn ext() -> PathBuf {
    let path = std::env::var_os("STICKLESS_EXT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/libstickless_php.so"));
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
        .args([
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.cache_limiter=",
        ])
        .args(["-r", code]);
    cmd
}

/// Creates a session the way a first request does (strict mode adopts no
/// ID a client makes up) and returns its ID.
pub fn new_session(url: &str) -> String {
    let out = php_session(
        url,
        "session_start(); $_SESSION['n'] = 0; echo session_id();",
    )
    .output()
    .expect("php runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What `php_expr` echoes with session `sid` opened read-only (without a
/// lock), trimmed.
pub fn read_session(url: &str, sid: &str, php_expr: &str) -> String {
    let out = php_session(
        url,
        &format!(
            "session_id('{sid}'); session_start(['read_and_close' => true]); echo {php_expr};"
        ),
    )
    .output()
    .expect("php runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `$_SESSION['n']` of session `sid`, read without a lock (0 when unset).
pub fn final_count(url: &str, sid: &str) -> i64 {
    read_session(url, sid, "$_SESSION['n'] ?? 0")
        .parse()
        .expect("a number")
}

/// Waits for every PHP process and asserts each exited 0 with nothing on
/// stderr (a warning there is a refused or lost write).
pub fn wait_clean(children: Vec<std::process::Child>) {
    for child in children {
        assert_clean(&child.wait_with_output().expect("php exits"));
    }
}

/// Asserts a PHP process exited 0 with nothing on stderr.
pub fn assert_clean(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "exit {}: {stderr}",
        out.status
    );
}

/// Every command the Redis server on `port` executes, one MONITOR line each,
/// read on a thread of its own until the receiver is dropped.
pub fn monitor(port: u16) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("MONITOR connects");
    stream.write_all(b"MONITOR\r\n").expect("MONITOR sent");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// What `php -r CODE` prints, trimmed (without the extension under test).
fn php_says(code: &str) -> String {
    let out = Command::new("php")
        .args(["-n", "-r", code])
        .output()
        .expect("php (the CLI) is on PATH");
    assert!(
        out.status.success(),
        "php -r {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `php` on PATH, as an absolute path (`PHP_BINARY`).
pub fn php_binary() -> PathBuf {
    PathBuf::from(php_says("echo PHP_BINARY;"))
}

/// The version of the `php` on PATH, as Debian names its packages: "8.4".
pub fn php_version() -> String {
    php_says(r#"echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;"#)
}

/// The first of `names` found as given, on PATH or in /usr/sbin.
fn find_binary(names: &[String]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .collect();
    names.iter().find_map(|name| {
        let name = Path::new(name);
        if name.is_absolute() {
            return name.is_file().then(|| name.to_path_buf());
        }
        dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
    })
}

/// php-fpm of the same version as `php`: `STICKLESS_PHP_FPM`, else
/// `php-fpm<version>` (Debian's name), else `php-fpm`.
pub fn php_fpm() -> PathBuf {
    let mut names: Vec<String> = std::env::var("STICKLESS_PHP_FPM").into_iter().collect();
    names.push(format!("php-fpm{}", php_version()));
    names.push("php-fpm".into());
    find_binary(&names)
        .unwrap_or_else(|| panic!("none of {names:?} found (apt-get install php-fpm)"))
}

/// PHP's own test runner, from the -dev package of the `php` on PATH:
/// `STICKLESS_RUN_TESTS`, else where Debian puts it
/// (/usr/lib/php/<api>/build/), else where `make install` does.
pub fn run_tests_php() -> PathBuf {
    if let Some(path) = std::env::var_os("STICKLESS_RUN_TESTS") {
        return PathBuf::from(path);
    }
    let version = php_version();
    let config = find_binary(&[format!("php-config{version}"), "php-config".into()])
        .unwrap_or_else(|| panic!("php-config is missing (apt-get install php{version}-dev)"));
    let ask = |flag: &str| {
        let out = Command::new(&config)
            .arg(flag)
            .output()
            .unwrap_or_else(|e| panic!("{} {flag}: {e}", config.display()));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let candidates = [
        PathBuf::from(format!(
            "/usr/lib/php/{}/build/run-tests.php",
            ask("--phpapi")
        )),
        PathBuf::from(ask("--prefix")).join("lib/php/build/run-tests.php"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "run-tests.php is missing (tried {candidates:?}; apt-get install php{version}-dev)"
            )
        })
}

/// The local stack of deploy/local/stack.sh (Redis, php-fpm pods, nginx),
/// in a state directory of its own; stopped by its own PIDs when dropped.
pub struct Stack {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl Stack {
    /// Starts `pods` pods; `env` adds stack.sh knobs.
    pub fn up(pods: usize, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("stk")
            .tempdir()
            .expect("a temp dir");
        let out = Command::new("bash")
            .arg(workspace().join("deploy/local/stack.sh"))
            .arg("up")
            .env("STACK_DIR", dir.path())
            .env("PODS", pods.to_string())
            .env("PHP_EXTENSION", ext())
            // The same server (and CLI) as every other test's: STICKLESS_REDIS_SERVER.
            .env("REDIS_SERVER", redis_support::redis_server_binary())
            .env("REDIS_CLI", redis_support::redis_cli_binary())
            .envs(env.iter().copied())
            .output()
            .expect("stack.sh runs");
        assert!(
            out.status.success(),
            "stack.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Self { dir, url }
    }

    /// A value from the stack's state file (`REDIS_PORT`, `POD_LIST`, ...).
    pub fn state(&self, name: &str) -> String {
        let env = std::fs::read_to_string(self.dir.path().join("stack.env"))
            .expect("stack.sh up wrote stack.env");
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('\'').to_owned())
            .unwrap_or_else(|| panic!("{name} not in stack.env"))
    }

    /// The port of the stack's redis-server.
    pub fn redis_port(&self) -> u16 {
        self.state("REDIS_PORT").parse().expect("a port")
    }

    /// What every pod's PHP logged (warnings included) so far.
    pub fn php_errors(&self) -> String {
        let pods = self.dir.path().join("pods");
        let mut out = String::new();
        for pod in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            if let Ok(log) = std::fs::read_to_string(pod.path().join("php-error.log")) {
                out.push_str(&log);
            }
        }
        out
    }

    /// The loopback port nginx listens on.
    pub fn port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace().join("deploy/local/stack.sh"))
            .arg("down")
            .env("STACK_DIR", self.dir.path())
            .status();
    }
}

/// A minimal HTTP/1.0 GET on loopback: (status, headers, body).
pub fn http_get(port: u16, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("nginx accepts connections");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout set");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{cookie}\r\n"
    )
    .expect("request sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A long-lived process that serves one request per line, as a php-fpm
/// worker serves one request after another on the same connections: a
/// request is a line on its stdin, the reply a line on its stdout. Killed
/// (by its own PID) when dropped.
pub struct LineWorker {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl LineWorker {
    /// Starts `cmd` with piped stdin and stdout (stderr as the caller set it).
    pub fn spawn(mut cmd: Command) -> Self {
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The worker's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `request` as one line and returns the reply line, trimmed.
    pub fn ask(&mut self, request: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{request}").expect("request sent");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reply read");
        assert!(!line.is_empty(), "the worker exited");
        line.trim().to_owned()
    }
}

impl Drop for LineWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
