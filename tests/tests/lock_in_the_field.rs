//! The lock as production sites meet it: cookies sent before the request
//! ends, requests longer than the lease, workers and waiters killed, Redis
//! down or hung under a worker, handler objects built per request. Real
//! php and php-fpm processes, nginx, and redis-server; each test owns its
//! servers.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use stickless::{SessionId, SessionKeys};
use stickless_e2e::{LineWorker, RedisServer, Stack, http_get, new_session, php_session};

/// "At once": far below every wait the lock has (lock_wait_ms 5 s, lease
/// 3 s, claim window 2 s), far above a loaded 2-core machine's noise.
const PROMPT: Duration = Duration::from_millis(500);

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn set_cookie(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

fn keys(prefix: &str, sid: &str) -> SessionKeys {
    SessionKeys::derive(prefix, &SessionId::parse(sid).expect("a PHP session ID"))
}

/// A long-lived PHP process, like a php-fpm worker: one request per line
/// on stdin (`new` for a new visitor, `again` for the same session, `sid
/// <id>` for that one), one result line on stdout: `ok <n> <ms>` or
/// `fail <ms> <warning>`.
struct Worker(LineWorker);

const LOOP: &str = r#"
while (($line = fgets(STDIN)) !== false) {
    $line = trim($line);
    if ($line === 'new') session_id('');
    if (str_starts_with($line, 'sid ')) session_id(substr($line, 4));
    error_clear_last();
    $t = microtime(true);
    $ok = @session_start();
    if ($ok) { $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; $ok = @session_write_close(); }
    $ms = (int) ((microtime(true) - $t) * 1000);
    $why = str_replace("\n", ' ', error_get_last()['message'] ?? '');
    echo $ok ? "ok {$_SESSION['n']} $ms" : "fail $ms $why", "\n";
}
"#;

impl Worker {
    fn start(url: &str) -> Self {
        let mut cmd = php_session(url, LOOP);
        cmd.stderr(Stdio::null());
        Self(LineWorker::spawn(cmd))
    }

    fn request(&mut self, what: &str) -> String {
        self.0.ask(what)
    }
}

fn millis(reply: &str) -> u64 {
    reply
        .split(' ')
        .nth(if reply.starts_with("ok") { 2 } else { 1 })
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no time in {reply}"))
}

/// A PHP process that takes `sid`'s lock, says `locked`, and holds it
/// until killed (or for `hold` and then writes `n+1`).
fn holder(url: &str, sid: &str, hold: Duration) -> (Child, BufReader<ChildStdout>) {
    let code = format!(
        "session_id('{sid}'); session_start(); echo \"locked\\n\"; flush(); \
         usleep({}); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;",
        hold.as_micros()
    );
    let mut child = php_session(url, &code)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("php starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("holder reports");
    assert_eq!(line.trim(), "locked");
    (child, out)
}

/// One request for `sid` in a fresh process: (succeeded, milliseconds
/// session_start took, stderr).
fn one_request(url: &str, sid: &str) -> (bool, u64, String) {
    let code = format!(
        "session_id('{sid}'); $t = microtime(true); $ok = session_start(); \
         $ms = (int) ((microtime(true) - $t) * 1000); \
         if ($ok) {{ $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; $ok = session_write_close(); }} \
         echo $ok ? 'ok' : 'fail', ' ', $ms;"
    );
    let out = php_session(url, &code).output().expect("php runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (verdict, ms) = stdout.trim().split_once(' ').unwrap_or(("fail", "0"));
    (
        verdict == "ok" && out.status.success(),
        ms.parse().unwrap_or(0),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn new_session_whose_cookie_goes_out_early_makes_the_next_request_wait_and_see_its_data() {
    // Before: the second request found no lock and no data, got a brand-new
    // session and cookie, and the two cookies overwrote each other (a lost
    // CSRF token or login).
    let stack = Stack::up(2, &[]);
    let hold = Duration::from_millis(800);
    let started = Instant::now();
    let (status, head, body) = http_get(
        stack.port(),
        &format!("/field/early_cookie.php?ms={}", hold.as_millis()),
        None,
    );
    assert_eq!(status, 200, "{head}\n{body}");
    let first = json(&body);
    let cookie = set_cookie(&head).expect("a new session sets its cookie");
    assert!(
        started.elapsed() < hold,
        "the response should come before the request ends"
    );

    let (status, head, body) = http_get(stack.port(), "/field/peek.php", Some(&cookie));
    let waited = started.elapsed();
    assert_eq!(status, 200, "{head}\n{body}");
    let second = json(&body);
    assert_ne!(second["pod"], first["pod"], "round-robin sent it elsewhere");
    assert_eq!(
        second["csrf"], first["csrf"],
        "the second request saw A's data"
    );
    assert_eq!(set_cookie(&head), None, "no second session was started");
    assert!(waited >= hold, "it did not wait for the first ({waited:?})");
    let errors = stack.php_errors();
    assert!(!errors.contains("stickless"), "{errors}");
}

#[test]
fn redis_killed_before_a_new_visitor_arrives_fails_session_start_naming_the_server() {
    // Before: session_start() returned true with an empty session, and the
    // write failed after the page was rendered: a login silently did not stick.
    let mut redis = RedisServer::start();
    let url = format!(
        "redis://127.0.0.1:{}/0?prefix=field:&connect_timeout_ms=300&timeout_ms=400",
        redis.port()
    );
    let mut worker = Worker::start(&url);
    assert!(worker.request("new").starts_with("ok 1 "));
    let mut returning = Worker::start(&url);
    assert!(returning.request("new").starts_with("ok 1 "));
    assert!(returning.request("again").starts_with("ok 2 "));

    redis.kill();
    let server = format!("127.0.0.1:{}", redis.port());
    // A fresh process, a kept connection whose server went away, and a
    // returning visitor on a kept connection: each start fails, and says why.
    let fresh = php_session(&url, "var_dump(session_start());")
        .output()
        .expect("php runs");
    let stdout = String::from_utf8_lossy(&fresh.stdout);
    let stderr = String::from_utf8_lossy(&fresh.stderr);
    assert!(stdout.contains("bool(false)"), "{stdout}{stderr}");
    assert!(
        stderr.contains(&server) && stderr.contains(" ms)"),
        "{stderr}"
    );
    for (who, reply) in [
        ("kept connection, new visitor", worker.request("new")),
        (
            "kept connection, returning visitor",
            returning.request("again"),
        ),
    ] {
        assert!(reply.starts_with("fail "), "{who}: {reply}");
        assert!(reply.contains(&server), "{who}: {reply}");
        assert!(millis(&reply) <= 1500 + 500, "{who}: {reply}");
    }
}

#[test]
fn request_three_times_longer_than_the_lease_keeps_its_lock_and_its_write_lands() {
    // Before: with no contention at all, a request that outlived
    // lock_ttl_ms lost its lock; a second request of the user took it, and
    // the first one's write was refused. An unchanged long request raised
    // two warnings.
    let lease = Duration::from_millis(1000);
    let stack = Stack::up(
        2,
        &[(
            "PHP_DEFINES",
            &format!("stickless.lock_ttl_ms={}", lease.as_millis()),
        )],
    );
    let (status, head, body) = http_get(stack.port(), "/bench/counter.php", None);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = set_cookie(&head).expect("session cookie");
    let port = stack.port();
    let long = lease * 3 + Duration::from_millis(200);
    let slow = {
        let cookie = cookie.clone();
        thread::spawn(move || {
            http_get(
                port,
                &format!("/bench/slow.php?ms={}", long.as_millis()),
                Some(&cookie),
            )
        })
    };
    // While it runs past its lease, the user's next request must wait.
    let mut redis = redis_client(stack.redis_port());
    wait_for_lock(&mut redis, "demo:");
    let (status, _, body) = http_get(port, "/bench/counter.php", Some(&cookie));
    assert_eq!(status, 200, "{body}");
    let (slow_status, _, slow_body) = slow.join().expect("slow request");
    assert_eq!(
        slow_status, 200,
        "the long request's write failed: {slow_body}"
    );
    assert_eq!(json(&slow_body)["n"], 2, "{slow_body}");
    assert_eq!(
        json(&body)["n"],
        3,
        "the next request ran before it: {body}"
    );

    // Unchanged and long: no warning either.
    let (status, _, body) = http_get(
        port,
        &format!("/field/peek.php?ms={}", long.as_millis()),
        Some(&cookie),
    );
    assert_eq!(status, 200, "{body}");
    let errors = stack.php_errors();
    assert!(!errors.contains("stickless"), "{errors}");
}

fn redis_client(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("the test's own redis")
}

/// Waits until some session under `prefix` is locked.
fn wait_for_lock(con: &mut redis::Connection, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let locks: Vec<String> = con.keys(format!("{prefix}*:lock")).expect("KEYS");
        if !locks.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no session got locked");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigkilled_holder_frees_its_session_and_the_next_request_succeeds_within_12_s() {
    // Before: after request_terminate_timeout, the OOM killer or an
    // eviction killed a worker, the user's next requests each failed after
    // lock_wait_ms (about 6 in a row) until the 30 s lease ran out.
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0?prefix=field:", redis.port());
    let sid = new_session(&url);
    let (mut killed, _out) = holder(&url, &sid, Duration::from_secs(60));
    killed.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    let _ = killed.wait();

    // Default settings: the very next request may wait, but must not fail.
    let (ok, ms, stderr) = one_request(&url, &sid);
    let recovery = killed_at.elapsed();
    assert!(ok, "the next request failed after {ms} ms: {stderr}");
    assert!(recovery < Duration::from_secs(12), "{recovery:?}");
    println!(
        "SIGKILLed holder: the next request got the session after {ms} ms ({recovery:?} after the kill)"
    );
}

#[test]
fn a_sigkilled_merge_mode_request_leaves_nothing_behind_and_loses_no_other_write() {
    // Merge mode takes no lock, so a worker killed between its read and
    // its write must leave no key that makes anyone wait, and the
    // session as the last completed request left it.
    let redis = RedisServer::start();
    let url = format!(
        "redis://127.0.0.1:{}/0?prefix=field-merge:&concurrency=merge",
        redis.port()
    );
    let sid = new_session(&url);
    let keys = keys("field-merge:", &sid);
    let (ok, _, stderr) = one_request(&url, &sid);
    assert!(ok, "{stderr}");
    let mut con = redis.client();
    let before: Vec<u8> = con.get(keys.data()).expect("GET");
    let (mut killed, _out) = holder(&url, &sid, Duration::from_secs(60));
    assert!(
        !con.exists::<_, bool>(keys.lock()).expect("EXISTS"),
        "a merge read locked"
    );
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    let after: Vec<u8> = con.get(keys.data()).expect("GET");
    assert_eq!(after, before, "the killed request changed the session");

    // Neither a merge-mode request nor a locked one waits for it.
    let locked = url.replace("&concurrency=merge", "");
    for (mode, url) in [("merge", url.as_str()), ("lock", locked.as_str())] {
        let started = Instant::now();
        let (ok, ms, stderr) = one_request(url, &sid);
        assert!(ok, "{mode}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(2) && ms < 500,
            "{mode}: waited {ms} ms in session_start after a killed merge-mode request"
        );
    }
    let count = php_session(
        &url,
        &format!(
            "session_id('{sid}'); session_start(['read_and_close' => true]); echo $_SESSION['n'];"
        ),
    )
    .output()
    .expect("php runs");
    // Made with 0; one increment before the kill, two after it.
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "3");
}

#[test]
fn three_sigkilled_waiters_do_not_make_later_requests_wait() {
    // Before: a waiter killed while queued stayed in the queue; each later
    // hand-off went to it and burnt a 2 s claim window, even for
    // sequential requests.
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0?prefix=field:", redis.port());
    let sid = new_session(&url);
    let keys = keys("field:", &sid);
    let (mut holding, _out) = holder(&url, &sid, Duration::from_millis(1500));
    let mut waiters: Vec<Child> = (0..3)
        .map(|_| {
            php_session(&url, &format!("session_id('{sid}'); session_start();"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("php starts")
        })
        .collect();
    let mut con = redis.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while con.zcard::<_, usize>(keys.queue()).expect("ZCARD") < 3
        || stickless_e2e::blocked_clients(&mut con) < 3
    {
        assert!(Instant::now() < deadline, "the waiters did not queue");
        thread::sleep(Duration::from_millis(5));
    }
    for waiter in &mut waiters {
        waiter.kill().expect("SIGKILL");
        let _ = waiter.wait();
    }
    assert!(holding.wait().expect("holder ends").success());

    let mut waits = Vec::new();
    for _ in 0..5 {
        let (ok, ms, stderr) = one_request(&url, &sid);
        assert!(ok, "{stderr}");
        waits.push(ms);
    }
    println!("after 3 dead waiters, session_start took {waits:?} ms");
    assert!(
        waits.iter().all(|&ms| Duration::from_millis(ms) < PROMPT),
        "{waits:?}"
    );
    assert_eq!(stickless_e2e::final_count(&url, &sid), 1 + 5);
}

#[test]
fn sigstopped_redis_during_a_request_serves_the_users_next_request_at_once_after_sigcont() {
    // Before: the request gave up on the hung server, but the lock it had
    // asked for was applied once the server resumed; the user's next
    // request waited the full lock_wait_ms and failed, for the 30 s lease.
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0?prefix=field:", redis.port());
    let sid = new_session(&url);
    let keys = keys("field:", &sid);
    let mut worker = Worker::start(&url);
    let user = format!("sid {sid}");
    assert!(worker.request(&user).starts_with("ok "));

    redis.stop();
    let reply = worker.request(&user);
    redis.cont();
    assert!(reply.starts_with("fail "), "{reply}");

    // The user's next request, on another worker: served at once.
    let (ok, ms, stderr) = one_request(&url, &sid);
    assert!(ok, "{stderr}");
    assert!(Duration::from_millis(ms) < PROMPT, "waited {ms} ms");
    let mut con = redis.client();
    let void: bool = con.exists(keys.void()).unwrap();
    assert!(void, "the token of the request that gave up was not voided");
}

#[test]
fn handler_objects_under_php_fpm_reuse_the_workers_connections() {
    // Before: every `new Stickless\SessionHandler(...)` (one per request in
    // Symfony and Laravel) opened its own connection: TCP, TLS and AUTH on
    // every request.
    const PODS: usize = 2;
    const WORKERS: usize = 2;
    let stack = Stack::up(
        PODS,
        &[
            ("POD_SESSION_INI", "none"),
            ("FPM_WORKERS", &WORKERS.to_string()),
        ],
    );
    let mut redis = redis_client(stack.redis_port());
    let connections = |con: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(con).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO stats")
    };
    let (status, head, body) = http_get(stack.port(), "/field/object.php", None);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = set_cookie(&head).expect("cookie");
    // Warm-up: every worker opens its connection once.
    for _ in 0..4 * PODS * WORKERS {
        assert_eq!(
            http_get(stack.port(), "/field/object.php", Some(&cookie)).0,
            200
        );
    }
    let before = connections(&mut redis);
    const REQUESTS: u64 = 40;
    let mut last = 0;
    for _ in 0..REQUESTS {
        let (status, _, body) = http_get(stack.port(), "/field/object.php", Some(&cookie));
        assert_eq!(status, 200, "{body}");
        last = json(&body)["n"].as_u64().expect("n");
    }
    let opened = connections(&mut redis) - before;
    println!(
        "handler objects: {opened} connections for {REQUESTS} requests ({:.3} per request)",
        opened as f64 / REQUESTS as f64
    );
    assert_eq!(
        last,
        1 + 4 * (PODS * WORKERS) as u64 + REQUESTS,
        "lost updates"
    );
    assert!(opened <= 1, "{opened} connections for {REQUESTS} requests");
}
