//! User error handlers (`set_error_handler`) that throw, end the script with
//! a fatal error, or call exit() on a stickless warning: the script sees what
//! PHP promises, the process neither crashes nor leaks a lock, and the
//! stored session is what the last successful request left.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use stickless::{SessionId, SessionKeys};
use stickless_e2e::{RedisServer, final_count, new_session, php, php_session};

/// How a script reaches the extension.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// `session.save_handler = stickless`.
    Native,
    /// `session_set_save_handler(new Stickless\SessionHandler($url), true)`.
    Object,
}

/// `php -r CODE` with the session served by `via` on `url`.
fn script(via: Via, url: &str, code: &str) -> Command {
    match via {
        Via::Native => php_session(url, code),
        Via::Object => {
            let mut cmd = php();
            cmd.args([
                "-d",
                "session.use_cookies=0",
                "-d",
                "session.cache_limiter=",
            ])
            .arg("-r")
            .arg(format!(
                "session_set_save_handler(new Stickless\\SessionHandler('{url}'), true);\n{code}"
            ));
            cmd
        }
    }
}

/// An error handler that turns every stickless warning into an exception
/// and leaves every other diagnostic to PHP (which prints it to stderr).
const THROWING_HANDLER: &str = r#"
set_error_handler(function (int $no, string $msg) {
    if (str_contains($msg, 'stickless: ')) {
        throw new ErrorException($msg, 0, $no);
    }
    return false;
});
"#;

fn url(redis: &RedisServer, prefix: &str, query: &str) -> String {
    format!(
        "redis://127.0.0.1:{}/0?prefix={prefix}{query}",
        redis.port()
    )
}

fn keys(prefix: &str, sid: &str) -> SessionKeys {
    SessionKeys::derive(prefix, &SessionId::parse(sid).expect("a valid session ID"))
}

fn exists(redis: &RedisServer, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query(&mut redis.client())
        .expect("EXISTS");
    n == 1
}

/// A crash shows as a signal exit or as one of these in the output.
fn assert_no_crash(what: &str, out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.signal().is_none(),
        "{what}: killed by signal {:?}\n{text}",
        out.status.signal()
    );
    for bad in ["panic", "Segmentation", "core dumped", "Bailed out without"] {
        assert!(!text.contains(bad), "{what}: `{bad}` in the output\n{text}");
    }
}

/// A fresh request with `lock_wait_ms=0` opens the session: nobody holds
/// its lock, and nobody waited for it. (Other warnings, such as a corrupt
/// value's, may still show.)
fn takes_the_lock_at_once(redis: &RedisServer, prefix: &str, sid: &str) {
    let url = url(redis, prefix, "&lock_wait_ms=0");
    let out = php_session(
        &url,
        &format!(
            "session_id('{sid}'); var_dump(session_start()); echo stickless_stats()['lock_waits'], \"\\n\";"
        ),
    )
    .output()
    .expect("php runs");
    assert_no_crash("fresh request", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("lock") && stdout == "bool(true)\n0\n",
        "a fresh request did not take the lock at once: {stdout}{stderr}"
    );
}

/// A request that holds the session's lock until told to let go, then
/// increments `n` and writes.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(via: Via, url: &str, sid: &str) -> Self {
        let code = format!(
            "session_id('{sid}'); if (!session_start()) exit(2); echo \"held\\n\"; fgets(STDIN); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; if (!session_write_close()) exit(3); echo \"released\\n\";"
        );
        let mut child = script(via, url, &code)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("php starts");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("holder output");
        assert_eq!(line, "held\n", "the holder did not get the lock");
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Lets go and waits until the lock is released.
    fn release(mut self) {
        let mut stdin = self.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("holder told");
        drop(stdin);
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("holder output");
        let status = self.child.wait().expect("holder exits");
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        assert!(
            line == "released\n" && status.success(),
            "holder: {line} {status} {stderr}"
        );
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long-lived PHP process with the throwing handler (like an fpm worker
/// serving request after request): one request per line on stdin, `inc`
/// (increment `n`) or `read`; one line back: `ok <n>` or `caught <message>`.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

const WORKER_LOOP: &str = r#"
function settle(): string {
    try {
        if (session_status() === PHP_SESSION_ACTIVE) session_write_close();
    } catch (ErrorException $e) {
        return ' / then ' . $e->getMessage();
    }
    return '';
}
while (($line = fgets(STDIN)) !== false) {
    session_id(TEST_SID);
    try {
        session_start();
        if (trim($line) === 'inc') $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
        session_write_close();
        echo 'ok ', $_SESSION['n'] ?? '-', "\n";
    } catch (ErrorException $e) {
        $more = settle();
        echo 'caught ', strtr($e->getMessage() . $more, "\n", ' '), "\n";
    }
}
"#;

impl Worker {
    fn start(via: Via, url: &str, sid: &str) -> Self {
        let code = format!("const TEST_SID = '{sid}';\n{THROWING_HANDLER}\n{WORKER_LOOP}");
        let mut child = script(via, url, &code)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("php starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, request: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{request}").expect("request sent");
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reply read");
        assert!(!line.is_empty(), "the worker died");
        line.trim_end().to_owned()
    }

    fn request(&mut self, request: &str) -> String {
        self.send(request);
        self.reply()
    }

    /// Ends the worker (stdin closed) and checks how it ended.
    fn finish(mut self) {
        drop(self.stdin.take());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let out = std::mem::replace(
            &mut self.child,
            Command::new("true").spawn().expect("true runs"),
        )
        .wait_with_output()
        .expect("worker exits");
        assert_no_crash("worker", &out);
        assert!(
            out.status.success() && out.stderr.is_empty() && rest.is_empty(),
            "worker ended with {}: {rest}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on every worker at once; their replies, in worker order.
fn all(workers: &mut [Worker], request: &str) -> Vec<String> {
    for w in workers.iter_mut() {
        w.send(request);
    }
    workers.iter_mut().map(Worker::reply).collect()
}

fn assert_all_caught(replies: &[String], what: &str) {
    for reply in replies {
        assert!(
            reply.starts_with("caught ") && reply.contains("stickless: ") && reply.contains(what),
            "expected an exception with `{what}`, got: {reply}"
        );
    }
}

fn lock_timeouts_with_a_throwing_handler(via: Via, prefix: &str) {
    let redis = RedisServer::start();
    let sid = new_session(&url(&redis, prefix, ""));
    let holder = Holder::start(via, &url(&redis, prefix, "&lock_ttl_ms=60000"), &sid);
    let contended = url(&redis, prefix, "&lock_wait_ms=1");
    let mut workers: Vec<Worker> = (0..6)
        .map(|_| Worker::start(via, &contended, &sid))
        .collect();
    for _ in 0..5 {
        let replies = all(&mut workers, "inc");
        assert_all_caught(&replies, "is locked by another request");
    }
    holder.release();
    let keys = keys(prefix, &sid);
    assert!(!exists(&redis, &keys.lock()), "a lock was left behind");
    // The same processes serve their next requests, and get the lock at once
    // (their lock_wait_ms is 1).
    for (i, w) in workers.iter_mut().enumerate() {
        assert_eq!(w.request("inc"), format!("ok {}", i + 2));
    }
    for w in workers {
        w.finish();
    }
    takes_the_lock_at_once(&redis, prefix, &sid);
    assert_eq!(final_count(&url(&redis, prefix, ""), &sid), 7);
}

#[test]
fn throwing_error_handler_in_six_workers_timing_out_on_a_held_lock_native() {
    // Before: the warning was raised from deep inside the extension, the
    // exception was left pending while Rust code kept running, and a handler
    // that ended the request instead longjmp'd through Rust frames.
    lock_timeouts_with_a_throwing_handler(Via::Native, "eh-lt-n:");
}

#[test]
fn throwing_error_handler_in_six_workers_timing_out_on_a_held_lock_object() {
    // Before: as with the native handler, and the warning was raised inside
    // the method, with ext-php-rs's argument frames still on the stack.
    lock_timeouts_with_a_throwing_handler(Via::Object, "eh-lt-o:");
}

fn corrupt_value_with_a_throwing_handler(via: Via, prefix: &str) {
    let redis = RedisServer::start();
    let sid = new_session(&url(&redis, prefix, ""));
    let keys = keys(prefix, &sid);
    let _: () = redis::cmd("SET")
        .arg(keys.data())
        .arg("not a stickless envelope")
        .query(&mut redis.client())
        .expect("SET");
    // One request per process: a user save handler gets no close() while an
    // exception is pending, so its lock goes with the object at request end.
    let code = format!(
        r#"{THROWING_HANDLER}
session_id('{sid}');
try {{
    session_start();
    echo "no exception\n";
}} catch (Throwable $e) {{
    for (; $e; $e = $e->getPrevious()) echo get_class($e), ': ', $e->getMessage(), "\n";
}}
try {{
    if (session_status() === PHP_SESSION_ACTIVE) session_write_close();
}} catch (Throwable $e) {{
    echo 'closing: ', $e->getMessage(), "\n";
}}
"#
    );
    let serialised = url(&redis, prefix, "&lock_wait_ms=20000");
    for _ in 0..3 {
        let racing: Vec<Child> = (0..4)
            .map(|_| {
                script(via, &serialised, &code)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("php starts")
            })
            .collect();
        for child in racing {
            let out = child.wait_with_output().expect("php exits");
            assert_no_crash("request", &out);
            let stdout = String::from_utf8_lossy(&out.stdout);
            // The read succeeded (an empty session, the lock held) and the
            // exception reached the script.
            assert!(
                out.status.success()
                    && out.stderr.is_empty()
                    && stdout.contains("ErrorException: ")
                    && stdout.contains("stickless: session {")
                    && stdout.contains("holds an unreadable value")
                    && !stdout.contains("no exception")
                    && !stdout.contains("closing: "),
                "{}: {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(!exists(&redis, &keys.lock()), "a lock was left behind");
    let stored: String = redis::cmd("GET")
        .arg(keys.data())
        .query(&mut redis.client())
        .expect("GET");
    assert_eq!(
        stored, "not a stickless envelope",
        "the stored value was replaced"
    );
    takes_the_lock_at_once(&redis, prefix, &sid);
}

#[test]
fn throwing_error_handler_in_four_racing_requests_on_a_corrupt_session_native() {
    // Before: the exception was left pending while the extension went on
    // with the session it had just locked.
    corrupt_value_with_a_throwing_handler(Via::Native, "eh-cv-n:");
}

#[test]
fn throwing_error_handler_in_four_racing_requests_on_a_corrupt_session_object() {
    // Before: the same, inside Stickless\SessionHandler::read().
    corrupt_value_with_a_throwing_handler(Via::Object, "eh-cv-o:");
}

#[test]
fn throwing_error_handler_in_four_workers_while_redis_is_frozen() {
    // Before: every timeout warning was raised from inside the extension's
    // Redis call path, with the handler's state borrowed.
    let prefix = "eh-stop:";
    let redis = RedisServer::start();
    let query = "&timeout_ms=200&connect_timeout_ms=200&budget_ms=400&lock_ttl_ms=1000";
    let url = url(&redis, prefix, query);
    let sid = new_session(&url);
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::start(Via::Native, &url, &sid))
        .collect();
    for (i, w) in workers.iter_mut().enumerate() {
        assert_eq!(w.request("inc"), format!("ok {}", i + 1));
    }
    redis.stop();
    for _ in 0..2 {
        let replies = all(&mut workers, "inc");
        for reply in &replies {
            assert!(
                reply.starts_with("caught ") && reply.contains("stickless: "),
                "expected an exception, got: {reply}"
            );
        }
    }
    redis.cont();
    // Lock requests sent while Redis was frozen run when it resumes, from
    // connections their senders gave up on: such a lock is only a lease
    // that expires (lock_ttl_ms=1000), never one held for good.
    let lock = keys(prefix, &sid).lock();
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(&redis, &lock) {
        assert!(Instant::now() < deadline, "the lock never went away");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (i, w) in workers.iter_mut().enumerate() {
        assert_eq!(w.request("inc"), format!("ok {}", i + 5));
    }
    for w in workers {
        w.finish();
    }
    takes_the_lock_at_once(&redis, prefix, &sid);
}

#[test]
fn throwing_error_handler_in_four_workers_when_redis_is_killed() {
    // Before: the same path, with Redis refusing connections.
    let prefix = "eh-kill:";
    let mut redis = RedisServer::start();
    let url = url(
        &redis,
        prefix,
        "&connect_timeout_ms=200&timeout_ms=200&budget_ms=400",
    );
    let sid = new_session(&url);
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::start(Via::Object, &url, &sid))
        .collect();
    for (i, w) in workers.iter_mut().enumerate() {
        assert_eq!(w.request("inc"), format!("ok {}", i + 1));
    }
    redis.kill();
    for _ in 0..2 {
        let replies = all(&mut workers, "inc");
        for reply in &replies {
            assert!(
                reply.starts_with("caught ") && reply.contains("stickless: "),
                "expected an exception, got: {reply}"
            );
        }
    }
    // Back, empty: strict mode starts each worker a new session.
    redis.respawn();
    for reply in all(&mut workers, "inc") {
        assert_eq!(reply, "ok 1");
    }
    for w in workers {
        w.finish();
    }
    assert!(!exists(&redis, &keys(prefix, &sid).lock()));
}

/// What the error handler does with a stickless warning.
#[derive(Clone, Copy)]
enum Ending {
    UserError,
    MemoryLimit,
    TimeLimit,
    Exit,
}

impl Ending {
    fn php(self) -> &'static str {
        match self {
            Ending::UserError => "trigger_error('fatal: ' . $msg, E_USER_ERROR);",
            Ending::MemoryLimit => {
                "ini_set('memory_limit', '32M'); $hog = []; while (true) { $hog[] = str_repeat('x', 1 << 20); }"
            }
            Ending::TimeLimit => "set_time_limit(1); while (true) {}",
            Ending::Exit => "echo 'exit on: ', $msg, \"\\n\"; exit(7);",
        }
    }

    /// What the script's output must show.
    fn shows(self) -> &'static str {
        match self {
            Ending::UserError => "Fatal error: fatal: ",
            Ending::MemoryLimit => "Allowed memory size of 33554432 bytes exhausted",
            Ending::TimeLimit => "Maximum execution time of 1 second exceeded",
            Ending::Exit => "exit on: ",
        }
    }

    fn code(self) -> i32 {
        match self {
            Ending::Exit => 7,
            _ => 255,
        }
    }
}

/// A request times out on a held lock; its error handler ends it. When
/// `late_release`, the holder lets go only once the ended request is in its
/// shutdown, so the lock is free by the time PHP saves the session at
/// request end: the empty `$_SESSION` of the failed start must not be
/// written over the holder's data. (That the process can still serve
/// sessions afterwards is checked under php-fpm, below.)
fn handler_ends_the_request(via: Via, prefix: &str, ending: Ending, late_release: bool) {
    let redis = RedisServer::start();
    let sid = new_session(&url(&redis, prefix, ""));
    let holder = Holder::start(via, &url(&redis, prefix, "&lock_ttl_ms=60000"), &sid);
    let flag = tempfile::tempdir().expect("a temp dir");
    let released = flag.path().join("released");
    let shutdown = if late_release {
        format!(
            "register_shutdown_function(function () {{ echo \"shutdown\\n\"; $end = microtime(true) + 30; while (!file_exists('{}') && microtime(true) < $end) usleep(1000); }});",
            released.display()
        )
    } else {
        String::new()
    };
    let code = format!(
        "set_error_handler(function (int $no, string $msg) {{ if (str_contains($msg, 'stickless: ')) {{ {} }} return false; }});\n{shutdown}\nsession_id('{sid}'); session_start(); echo \"after session_start\\n\";",
        ending.php()
    );
    let mut child = script(via, &url(&redis, prefix, "&lock_wait_ms=1"), &code)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts");
    if late_release {
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        while !seen.ends_with("shutdown\n") {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).expect("output") > 0,
                "no shutdown: {seen}"
            );
            seen.push_str(&line);
        }
        holder.release();
        std::fs::write(&released, b"").expect("flag written");
        std::io::Read::read_to_string(&mut stdout, &mut seen).expect("output");
        let out = child.wait_with_output().expect("php exits");
        check_ended(ending, &seen, &out);
    } else {
        let out = child.wait_with_output().expect("php exits");
        check_ended(ending, &String::from_utf8_lossy(&out.stdout), &out);
        holder.release();
    }
    let keys = keys(prefix, &sid);
    assert!(!exists(&redis, &keys.lock()), "a lock was left behind");
    takes_the_lock_at_once(&redis, prefix, &sid);
    assert_eq!(
        final_count(&url(&redis, prefix, ""), &sid),
        1,
        "the holder's write was lost"
    );
}

fn check_ended(ending: Ending, stdout: &str, out: &Output) {
    assert_no_crash("ended request", out);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(ending.code()), "{text}");
    assert!(text.contains(ending.shows()), "{text}");
    assert!(
        !text.contains("after session_start"),
        "the script went on: {text}"
    );
    if matches!(ending, Ending::UserError | Ending::Exit) {
        // The handler saw our warning, with its usual prefix.
        assert!(
            text.contains("stickless: session {") && text.contains("is locked by another request"),
            "{text}"
        );
    }
}

#[test]
fn fatal_error_in_the_error_handler_on_a_lock_timeout_native() {
    // Before: trigger_error(E_USER_ERROR) in the handler longjmp'd through
    // the extension: the handler state stayed borrowed for good, PHP's
    // request-end write failed ("Failed to write session data"), and in a
    // php-fpm worker every later request of that worker lost its session.
    handler_ends_the_request(Via::Native, "eh-fe-n:", Ending::UserError, true);
}

#[test]
fn fatal_error_in_the_error_handler_on_a_lock_timeout_object() {
    // Before: the longjmp went through the method's frames instead.
    handler_ends_the_request(Via::Object, "eh-fe-o:", Ending::UserError, true);
}

#[test]
fn memory_limit_hit_in_the_error_handler_on_a_lock_timeout() {
    // Before: the "Allowed memory size" fatal longjmp'd through the
    // extension, as any fatal error in the handler did.
    handler_ends_the_request(Via::Native, "eh-ml:", Ending::MemoryLimit, false);
}

#[test]
fn max_execution_time_hit_in_the_error_handler_on_a_lock_timeout() {
    // Before: the timeout's bailout longjmp'd through the extension.
    handler_ends_the_request(Via::Native, "eh-tl:", Ending::TimeLimit, false);
}

#[test]
fn exit_in_the_error_handler_on_a_lock_timeout_native() {
    // Before: exit() left its unwinding pending while the extension went on.
    handler_ends_the_request(Via::Native, "eh-ex-n:", Ending::Exit, true);
}

#[test]
fn exit_in_the_error_handler_on_a_lock_timeout_object() {
    // Before: the same inside Stickless\SessionHandler::read().
    handler_ends_the_request(Via::Object, "eh-ex-o:", Ending::Exit, true);
}

/// `php -r CODE` on a save path with an inline password.
fn fatal_with_password(redis: &RedisServer, code: &str) -> (String, Output) {
    let url = format!("{}?prefix=eh-pw:", redis.url());
    let out = php_session(&url, code).output().expect("php runs");
    assert_no_crash("script", &out);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out)
}

#[test]
fn fatal_error_quoting_a_save_path_with_a_password_shows_it_redacted() {
    // Before: the redacted copy of the message was a Rust value held while
    // PHP's error callback ran, and that callback bails out after every
    // fatal error: a longjmp through a frame with a destructor.
    const PASSWORD: &str = "pw-in-the-path-7f3a";
    let redis = RedisServer::start_with_password(Some(PASSWORD));
    let shown = format!("redis://:***@127.0.0.1:{}/0?prefix=eh-pw:", redis.port());
    for (what, code) in [
        (
            "E_USER_ERROR",
            "session_start(); $_SESSION['n'] = 1; trigger_error('cannot go on with ' . ini_get('session.save_path'), E_USER_ERROR);",
        ),
        (
            "uncaught exception",
            "session_start(); $_SESSION['n'] = 1; throw new RuntimeException('cannot go on with ' . ini_get('session.save_path'));",
        ),
    ] {
        let (text, out) =
            fatal_with_password(&redis, &format!("{code} echo 'after the fatal error';"));
        assert_eq!(out.status.code(), Some(255), "{what}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{what}: the password was shown: {text}"
        );
        assert!(
            text.contains(&format!("cannot go on with {shown}")),
            "{what}: no redacted path in: {text}"
        );
        assert!(!text.contains("after the fatal error"), "{what}: {text}");
    }
    // The session of a request that ended in such a fatal error is still
    // saved at request end, as PHP does for every fatal error.
    let count = fatal_with_password(
        &redis,
        "session_start(); echo session_id(), \"\\n\"; $_SESSION['n'] = 41; trigger_error('fatal at ' . ini_get('session.save_path'), E_USER_ERROR);",
    );
    let sid = String::from_utf8_lossy(&count.1.stdout).trim().to_owned();
    let url = format!("{}?prefix=eh-pw:", redis.url());
    assert_eq!(final_count(&url, &sid), 41, "{}", count.0);
    assert!(!exists(&redis, &keys("eh-pw:", &sid).lock()));
}

/// A php-fpm master with one worker (pm=static), so every request reaches
/// the same process, serving PHP files from its own directory over a Unix
/// socket. Stopped by its PID when dropped.
struct Fpm {
    child: Child,
    dir: tempfile::TempDir,
}

impl Fpm {
    fn start(save_path: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("eh-fpm")
            .tempdir()
            .expect("a temp dir");
        let d = dir.path().display();
        let conf = format!(
            "[global]\nerror_log = {d}/fpm.log\ndaemonize = no\n\n[eh]\nlisten = {d}/fpm.sock\npm = static\npm.max_children = 1\ncatch_workers_output = yes\nphp_admin_value[session.save_handler] = stickless\nphp_admin_value[session.save_path] = \"{save_path}\"\nphp_admin_value[session.use_cookies] = 0\nphp_admin_value[session.cache_limiter] = \"\"\nphp_admin_value[display_errors] = 1\nphp_admin_value[error_reporting] = -1\n"
        );
        std::fs::write(dir.path().join("fpm.conf"), conf).expect("fpm.conf written");
        let binary = stickless_e2e::php_fpm();
        let mut cmd = Command::new(&binary);
        // --allow-to-run-as-root only permits root; the tests may run as it.
        cmd.args(["-n", "-F", "--allow-to-run-as-root", "-y"])
            .arg(dir.path().join("fpm.conf"))
            .arg("-d")
            .arg(format!("extension={}", stickless_e2e::ext().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        let fpm = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(fpm.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "php-fpm never listened: {}",
                fpm.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        fpm
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("fpm.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fpm.log")).unwrap_or_default()
    }

    /// Writes `name` into the document directory.
    fn file(&self, name: &str, php: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, php).expect("script written");
        path
    }

    /// A GET of `script?query` over FastCGI: what the worker wrote to stdout.
    fn get(&self, script: &Path, query: &str) -> String {
        let mut stream =
            std::os::unix::net::UnixStream::connect(self.socket()).expect("php-fpm accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout set");
        let script = script.display().to_string();
        let mut params = Vec::new();
        for (k, v) in [
            ("SCRIPT_FILENAME", script.as_str()),
            ("SCRIPT_NAME", "/s.php"),
            ("REQUEST_METHOD", "GET"),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
        ] {
            for len in [k.len(), v.len()] {
                params.push(u8::try_from(len).expect("short FastCGI params"));
            }
            params.extend_from_slice(k.as_bytes());
            params.extend_from_slice(v.as_bytes());
        }
        let mut request = Vec::new();
        // BEGIN_REQUEST (role RESPONDER), PARAMS, end of PARAMS, end of STDIN.
        fcgi_record(&mut request, 1, &[0, 1, 0, 0, 0, 0, 0, 0]);
        fcgi_record(&mut request, 4, &params);
        fcgi_record(&mut request, 4, &[]);
        fcgi_record(&mut request, 5, &[]);
        stream.write_all(&request).expect("request sent");
        let mut stdout = Vec::new();
        loop {
            let mut header = [0u8; 8];
            std::io::Read::read_exact(&mut stream, &mut header).expect("a FastCGI record");
            let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let mut body = vec![0u8; len + usize::from(header[6])];
            std::io::Read::read_exact(&mut stream, &mut body).expect("its content");
            match header[1] {
                6 => stdout.extend_from_slice(&body[..len]),
                3 => break,
                _ => {}
            }
        }
        String::from_utf8_lossy(&stdout).into_owned()
    }
}

fn fcgi_record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    let len = u16::try_from(content.len()).expect("one record");
    out.extend_from_slice(&[1, kind, 0, 1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
}

impl Drop for Fpm {
    fn drop(&mut self) {
        // SIGQUIT to our own master: it stops its worker, then itself.
        let _ = Command::new("kill")
            .arg("-QUIT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn fatal_error_in_the_error_handler_and_the_php_fpm_worker_serves_the_next_request() {
    // Before: the fatal error longjmp'd through the extension and left the
    // worker's handler borrowed for good: every later request of that worker
    // failed with "Failed to initialize storage module".
    let prefix = "eh-fpm:";
    let redis = RedisServer::start();
    let sid = new_session(&url(&redis, prefix, ""));
    let fpm = Fpm::start(&url(&redis, prefix, "&lock_wait_ms=1"));
    let page = fpm.file(
        "s.php",
        r#"<?php
echo 'pid ', getmypid(), "\n";
if ($_GET['mode'] === 'fatal') {
    set_error_handler(function (int $no, string $msg) {
        if (str_contains($msg, 'stickless: ')) trigger_error('fatal: ' . $msg, E_USER_ERROR);
        return false;
    });
}
session_id($_GET['sid']);
$ok = session_start();
echo 'start ', $ok ? 'ok' : 'failed', ' n ', $_SESSION['n'] ?? '-', "\n";
"#,
    );
    let holder = Holder::start(
        Via::Native,
        &url(&redis, prefix, "&lock_ttl_ms=60000"),
        &sid,
    );
    let ended = fpm.get(&page, &format!("mode=fatal&sid={sid}"));
    assert!(
        ended.contains("fatal: stickless: session {") && !ended.contains("start "),
        "{ended}"
    );
    holder.release();
    let pid = |body: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix("pid "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no pid in {body}"))
    };
    for _ in 0..3 {
        let next = fpm.get(&page, &format!("mode=plain&sid={sid}"));
        assert!(next.contains("start ok n 1\n"), "{next}\n{}", fpm.log());
        assert_eq!(pid(&next), pid(&ended), "the worker was replaced");
    }
    assert!(!fpm.log().contains("signal"), "{}", fpm.log());
    assert!(!exists(&redis, &keys(prefix, &sid).lock()));
}

#[test]
fn error_handler_on_the_release_by_a_freed_handler_object_while_redis_is_frozen() {
    // Before: a framework that never calls close() gets its lock released
    // when the object is freed; that warning was raised from inside its
    // Drop, and a fatal error in the handler longjmp'd out of the drop glue.
    let redis = RedisServer::start();
    let url = url(
        &redis,
        "eh-drop:",
        "&timeout_ms=200&connect_timeout_ms=200&budget_ms=300",
    );
    for (ending, code) in [
        (
            "throw new ErrorException($msg);",
            "try { $h = null; echo \"no exception\\n\"; } catch (ErrorException $e) { echo 'caught ', $e->getMessage(), \"\\n\"; }",
        ),
        (
            "trigger_error('fatal: ' . $msg, E_USER_ERROR);",
            "$h = null; echo \"went on\\n\";",
        ),
    ] {
        let script = format!(
            r#"set_error_handler(function (int $no, string $msg) {{
    if (str_contains($msg, 'stickless: ')) {{ {ending} }}
    return false;
}});
$h = new Stickless\SessionHandler('{url}');
$id = $h->create_sid();
$h->read($id);
echo "locked\n";
fgets(STDIN);
{code}
"#
        );
        let mut child = php()
            .arg("-r")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("php starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("output");
        assert_eq!(line, "locked\n");
        redis.stop();
        stdin.write_all(b"go\n").expect("told");
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("output");
        let out = child.wait_with_output().expect("php exits");
        redis.cont();
        assert_no_crash("freed handler", &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if ending.starts_with("throw") {
            assert!(
                out.status.success()
                    && stderr.is_empty()
                    && rest.starts_with("caught ")
                    && rest.contains("stickless: ")
                    && rest.contains("timeout_ms"),
                "{rest}{stderr}"
            );
        } else {
            assert!(
                out.status.code() == Some(255)
                    && stderr.contains("Fatal error: fatal: ")
                    && stderr.contains("stickless: ")
                    && !rest.contains("went on"),
                "{}: {rest}{stderr}",
                out.status
            );
        }
    }
}
