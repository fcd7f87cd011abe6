//! Redis misbehaving under a running PHP worker: the request gets its answer
//! or its error within the configured budget, and the worker recovers by
//! itself once Redis is back.

use std::process::Stdio;
use std::time::Duration;

use stickless_e2e::{LineWorker, RedisServer, php_session};

/// A long-lived PHP process (like an fpm worker): one "request" per line on
/// stdin, one result line on stdout: `ok <counter> <ms>` or `fail <ms>`.
struct Worker(LineWorker);

const LOOP: &str = r#"
$sid = null;
while (($line = fgets(STDIN)) !== false) {
    if ($sid !== null) session_id($sid);
    $t = microtime(true);
    $ok = @session_start();
    if ($ok) { $sid = session_id(); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; $ok = session_write_close(); }
    $ms = (int)((microtime(true) - $t) * 1000);
    echo $ok ? "ok {$_SESSION['n']} $ms" : "fail $ms", "\n";
    if (!$ok) fwrite(STDERR, (error_get_last()['message'] ?? '') . "\n");
}
"#;

impl Worker {
    fn start(url: &str) -> Self {
        let mut cmd = php_session(url, LOOP);
        cmd.stderr(Stdio::piped());
        Self(LineWorker::spawn(cmd))
    }

    fn request(&mut self) -> String {
        self.0.ask("go")
    }
}

fn millis(reply: &str) -> u64 {
    reply
        .rsplit(' ')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("ms")
}

#[test]
fn hung_redis_costs_a_request_at_most_its_budget_and_the_worker_recovers() {
    let redis = RedisServer::start();
    let url = format!(
        "redis://127.0.0.1:{}/0?prefix=fault:&connect_timeout_ms=300&timeout_ms=400",
        redis.port()
    );
    let mut worker = Worker::start(&url);
    assert!(worker.request().starts_with("ok 1 "));

    redis.stop();
    let reply = worker.request();
    redis.cont();
    assert!(reply.starts_with("fail"), "{reply}");
    // connect_timeout_ms + timeout_ms = 700 ms; allow for a loaded machine.
    let spent = Duration::from_millis(millis(&reply));
    assert!(spent <= Duration::from_millis(700 + 500), "{spent:?}");

    // No restart needed: the next request reconnects and nothing was lost.
    let reply = worker.request();
    assert!(reply.starts_with("ok 2 "), "{reply}");
}

#[test]
fn restarted_redis_is_reconnected_without_an_error() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    let url = format!("redis://127.0.0.1:{port}/0?prefix=fault:");
    let mut worker = Worker::start(&url);
    assert!(worker.request().starts_with("ok 1 "));

    // Same address, new server, empty data set: the kept connection is dead.
    redis = redis.restart();
    assert_eq!(redis.port(), port);
    let reply = worker.request();
    assert!(reply.starts_with("ok 1 "), "{reply}");
}
