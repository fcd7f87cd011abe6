//! Every step of a PHP request (session_start, session_write_close) stays
//! within `budget_ms`, whatever goes wrong underneath: a hung server, a DNS
//! outage, a host name whose first address black-holes.
//!
//! Real php and redis-server processes. DNS and /etc/hosts are faked for
//! the php child only: it runs in a private mount namespace with the
//! test's own resolv.conf and hosts file bound over the system's. The DNS
//! server that never answers is a UDP socket bound on a loopback address
//! and never read; the black-holed TCP address is a listener whose accept
//! queue is full, so Linux drops its SYNs.

#[path = "../../crates/stickless/tests/support/mod.rs"]
mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use socket2::{Domain, Socket, Type};
use stickless_e2e::{LineWorker, php};
use support::RedisServer;
use support::tls::{TestCa, tls_server};

/// What a step may take beyond its budget on a busy machine. The failures
/// this file guards against overshot by a whole `timeout_ms` or more.
const SLACK: Duration = Duration::from_millis(200);

/// The limits of the hung-server cases. Each part's own timeout is longer
/// than the budget on purpose: the budget, not the part, must end the step.
const HUNG_LIMITS: &str = "connect_timeout_ms=500&timeout_ms=1000&budget_ms=700";
const HUNG_BUDGET: Duration = Duration::from_millis(700);

/// One request per line on stdin (`<sid or -> [hold]`), one JSON result per
/// line on stdout. `hold` stops between session_start and
/// session_write_close until the next line, so the test can hang the
/// server between the two.
const LOOP: &str = r#"
$warnings = [];
set_error_handler(function ($no, $msg) use (&$warnings) { $warnings[] = $msg; return true; });
while (($line = fgets(STDIN)) !== false) {
    [$sid, $hold] = explode(' ', trim($line)) + ['-', ''];
    $warnings = [];
    session_id($sid === '-' ? '' : $sid);
    $t = hrtime(true);
    $started = session_start();
    $start_ms = intdiv(hrtime(true) - $t, 1000000);
    if ($started) { $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; }
    if ($hold === 'hold') { echo "{\"held\":true}\n"; fgets(STDIN); }
    $t = hrtime(true);
    if ($started) { session_write_close(); }
    $write_ms = intdiv(hrtime(true) - $t, 1000000);
    echo json_encode([
        'id' => session_id(), 'started' => $started, 'n' => $_SESSION['n'] ?? 0,
        'start_ms' => $start_ms, 'write_ms' => $write_ms, 'warnings' => $warnings,
    ]), "\n";
}
"#;

#[derive(Debug, Deserialize)]
struct Reply {
    id: String,
    started: bool,
    n: i64,
    start_ms: u64,
    write_ms: u64,
    warnings: Vec<String>,
}

impl Reply {
    fn start(&self) -> Duration {
        Duration::from_millis(self.start_ms)
    }

    fn write(&self) -> Duration {
        Duration::from_millis(self.write_ms)
    }

    /// stickless's own warning (PHP adds its generic ones after it).
    fn cause(&self) -> &str {
        self.warnings
            .iter()
            .find(|w| w.contains("stickless: "))
            .map_or("", String::as_str)
    }
}

/// A long-lived php process, as an fpm worker keeps its connection
/// across requests.
struct Worker(LineWorker);

impl Worker {
    fn start(url: &str, ini: &[(&str, &str)]) -> Self {
        Self::spawn(worker_command(url, ini))
    }

    /// The same inside `net`'s private view of DNS and /etc/hosts.
    fn start_in(net: &FakeNet, url: &str, ini: &[(&str, &str)]) -> Self {
        Self::spawn(net.wrap(&worker_command(url, ini)))
    }

    fn spawn(mut cmd: Command) -> Self {
        cmd.stderr(Stdio::inherit());
        Self(LineWorker::spawn(cmd))
    }

    fn request(&mut self, sid: Option<&str>) -> Reply {
        parse(&self.0.ask(sid.unwrap_or("-")))
    }

    /// Runs session_start, then `between` (with the session open), then
    /// session_write_close.
    fn request_around(&mut self, sid: Option<&str>, between: impl FnOnce()) -> Reply {
        let held = self.0.ask(&format!("{} hold", sid.unwrap_or("-")));
        assert_eq!(held, r#"{"held":true}"#);
        between();
        parse(&self.0.ask(""))
    }

    /// Threads of the php process (it is the child itself: unshare and sh
    /// exec into it).
    fn threads(&self) -> usize {
        let status = fs::read_to_string(format!("/proc/{}/status", self.0.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("a thread count")
    }
}

fn parse(line: &str) -> Reply {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn worker_command(url: &str, ini: &[(&str, &str)]) -> Command {
    php_loop(url, ini, LOOP)
}

/// php running `script` with stickless as its save handler for `url`.
fn php_loop(url: &str, ini: &[(&str, &str)], script: &str) -> Command {
    let mut cmd = php();
    cmd.args(["-d", "session.save_handler=stickless"])
        .arg("-d")
        .arg(format!("session.save_path=\"{url}\""))
        .args([
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.cache_limiter=",
        ]);
    for (key, value) in ini {
        cmd.arg("-d").arg(format!("{key}={value}"));
    }
    cmd.args(["-r", script]);
    cmd
}

/// A resolv.conf naming a DNS server that never answers, and a hosts file
/// of the test's choosing, for php children only.
struct FakeNet {
    dir: tempfile::TempDir,
    /// Bound, never read: queries go unanswered, without even an ICMP
    /// "port unreachable" to end them early.
    _dns: UdpSocket,
}

impl FakeNet {
    fn new(hosts: &[&str]) -> Self {
        let dns = silent_dns();
        let dir = tempfile::Builder::new()
            .prefix("stickless-net-")
            .tempdir()
            .expect("temp dir");
        let ip = dns.local_addr().expect("dns address").ip();
        // What a real outage costs a lookup here: 2 tries of 5 s.
        let resolv = format!("nameserver {ip}\noptions timeout:5 attempts:2\n");
        fs::write(dir.path().join("resolv.conf"), resolv).expect("resolv.conf");
        let hosts = format!("127.0.0.1 localhost\n{}\n", hosts.join("\n"));
        fs::write(dir.path().join("hosts"), hosts).expect("hosts");
        Self { dir, _dns: dns }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cmd` in a private mount namespace with this view bound over
    /// /etc/resolv.conf and /etc/hosts; the host's files are untouched.
    fn wrap(&self, cmd: &Command) -> Command {
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@""#)
            .arg("sh")
            .arg(self.file("resolv.conf"))
            .arg(self.file("hosts"))
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        wrapped
    }
}

/// A UDP socket on port 53 of some free loopback address (never
/// 127.0.0.53, where a local resolver may live).
fn silent_dns() -> UdpSocket {
    let mut errors = Vec::new();
    for last in (10..=250).filter(|n| *n != 53) {
        match UdpSocket::bind((Ipv4Addr::new(127, 0, 0, last), 53)) {
            Ok(socket) => return socket,
            Err(e) => errors.push(e.to_string()),
        }
    }
    panic!("no loopback address for a silent DNS server (needs root): {errors:?}");
}

/// A TCP address that swallows connects: a listener with an accept queue
/// of one, filled. Linux then drops further SYNs, as a firewall that
/// black-holes a dead node's address does.
struct BlackHole {
    _listener: Socket,
    _queued: Vec<TcpStream>,
}

impl BlackHole {
    fn on(addr: SocketAddr) -> Self {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener.bind(&addr.into()).expect("bind the black hole");
        listener.listen(0).expect("listen");
        let mut queued = Vec::new();
        // Fill the queue until a connect goes unanswered: the condition
        // itself, not a guess at when the kernel is ready.
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Self {
                        _listener: listener,
                        _queued: queued,
                    };
                }
                Err(e) => panic!("probing the black hole: {e}"),
            }
        }
        panic!("{addr} kept accepting connections: its SYNs are not dropped");
    }
}

fn assert_within(spent: Duration, budget: Duration, what: &str, reply: &Reply) {
    assert!(
        spent <= budget + SLACK,
        "{what} took {spent:?}, over its budget of {budget:?}: {reply:?}"
    );
}

/// One request of `worker` (for `visitor`, or a new one) while `redis` is
/// stopped: both steps end within `budget` and say why they failed.
fn hung_request(
    worker: &mut Worker,
    redis: &RedisServer,
    visitor: Option<&str>,
    budget: Duration,
    case: &str,
) -> Reply {
    redis.stop();
    let reply = worker.request(visitor);
    redis.cont();
    assert_within(
        reply.start(),
        budget,
        &format!("{case}: session_start"),
        &reply,
    );
    assert_within(reply.write(), budget, &format!("{case}: write"), &reply);
    assert!(reply.cause().contains(" within "), "{case}: {reply:?}");
    reply
}

/// One request of `worker` whose server is stopped between session_start
/// and session_write_close: the write ends within `budget` and says why.
fn hung_write(
    worker: &mut Worker,
    redis: &RedisServer,
    visitor: Option<&str>,
    budget: Duration,
    case: &str,
) {
    let reply = worker.request_around(visitor, || redis.stop());
    redis.cont();
    assert!(reply.started, "{case}: {reply:?}");
    assert_within(reply.write(), budget, &format!("{case}: write"), &reply);
    assert!(reply.cause().contains(" within "), "{case}: {reply:?}");
}

/// A new session, stored, for returning-visitor cases.
fn stored_session(url: &str) -> String {
    let mut worker = Worker::start(url, &[]);
    let reply = worker.request(None);
    assert!(reply.started && reply.warnings.is_empty(), "{reply:?}");
    reply.id
}

#[test]
fn a_hung_redis_costs_each_step_of_a_php_request_at_most_budget_ms() {
    // Before: a returning visitor's session_start took 2,052 ms under
    // budget_ms=1500, timeout_ms=1000 against a SIGSTOPped Redis: the
    // lock's SET NX + GET pipeline waited timeout_ms for each of its two
    // replies. A fresh connection's AUTH + SELECT did the same.
    let password = "budget-secret";
    let redis = RedisServer::start_with_password(Some(password));
    let budget = HUNG_BUDGET;
    let url = format!(
        "redis://:{password}@127.0.0.1:{}/2?prefix=budget:&{HUNG_LIMITS}",
        redis.port()
    );
    let sid = stored_session(&url);

    for strict in ["1", "0"] {
        let ini = [("stickless.strict_mode", strict)];
        for returning in [false, true] {
            let visitor = returning.then_some(sid.as_str());
            for kept in [true, false] {
                let case = format!("strict={strict} returning={returning} kept={kept}");
                let mut worker = Worker::start(&url, &ini);
                if kept {
                    assert!(worker.request(Some(&sid)).started, "{case}");
                }
                let reply = hung_request(&mut worker, &redis, visitor, budget, &case);
                let cause = reply.cause();
                assert!(!cause.contains(password), "{case}: {cause}");
                // No restart needed: the worker reconnects by itself.
                let next = worker.request(Some(&sid));
                assert!(next.started && next.warnings.is_empty(), "{case}: {next:?}");
            }
            // Hung between session_start and session_write_close.
            let case = format!("strict={strict} returning={returning} write");
            let mut worker = Worker::start(&url, &ini);
            hung_write(&mut worker, &redis, visitor, budget, &case);
        }
    }
}

#[test]
fn a_hung_redis_costs_each_step_of_a_merge_mode_request_at_most_budget_ms() {
    // Merge mode reads with one GETEX and writes with a compare-and-set
    // (replayed after a conflict): other steps than the locked path's, over
    // the same budgeted link. Each must end by the budget against a
    // SIGSTOPped server, say why, and leave the worker usable.
    let redis = RedisServer::start();
    let budget = HUNG_BUDGET;
    let url = format!(
        "redis://127.0.0.1:{}/3?prefix=budget-merge:&concurrency=merge&{HUNG_LIMITS}",
        redis.port()
    );
    let sid = stored_session(&url);
    let mut counted = Worker::start(&url, &[]).request(Some(&sid)).n;

    for returning in [false, true] {
        let visitor = returning.then_some(sid.as_str());
        for kept in [true, false] {
            let case = format!("merge returning={returning} kept={kept}");
            let mut worker = Worker::start(&url, &[]);
            if kept {
                let reply = worker.request(Some(&sid));
                assert!(reply.started && reply.n == counted + 1, "{case}: {reply:?}");
                counted = reply.n;
            }
            hung_request(&mut worker, &redis, visitor, budget, &case);
            let next = worker.request(Some(&sid));
            assert!(next.started && next.warnings.is_empty(), "{case}: {next:?}");
            // The hung request never read the session: nothing of it was
            // written, and every acknowledged increment is still there.
            assert_eq!(next.n, counted + 1, "{case}: {next:?}");
            counted = next.n;
        }
        // Hung between the read and the compare-and-set.
        let case = format!("merge returning={returning} write");
        let mut worker = Worker::start(&url, &[]);
        hung_write(&mut worker, &redis, visitor, budget, &case);
        let next = worker.request(Some(&sid));
        assert!(next.started && next.warnings.is_empty(), "{case}: {next:?}");
        // The write that timed out may still have been applied once the
        // server resumed (it was in the server's buffer): either way the
        // count went on from an increment that was read, never back.
        assert!(
            next.n > counted && next.n <= counted + 2,
            "{case}: {next:?} after {counted}"
        );
        counted = next.n;
    }
}

#[test]
fn a_hung_redis_costs_each_step_of_a_phpredis_compatible_request_at_most_budget_ms() {
    // compat=phpredis takes phpredis's own lock (polled SET NX, released by
    // its value) and writes with SETEX: other commands than the native
    // path's, over the same budgeted link. A migration runs this mode on
    // production traffic, so a hung server must cost it no more.
    let redis = RedisServer::start();
    let budget = HUNG_BUDGET;
    let url = format!(
        "redis://127.0.0.1:{}?compat=phpredis&{HUNG_LIMITS}&lock_wait_ms=2000",
        redis.port()
    );
    let sid = stored_session(&url);
    let key = format!("PHPREDIS_SESSION:{sid}");
    let mut con = redis.client();

    for returning in [false, true] {
        let visitor = returning.then_some(sid.as_str());
        for kept in [true, false] {
            let case = format!("compat returning={returning} kept={kept}");
            let mut worker = Worker::start(&url, &[]);
            if kept {
                assert!(worker.request(Some(&sid)).started, "{case}");
            }
            hung_request(&mut worker, &redis, visitor, budget, &case);
            let next = worker.request(Some(&sid));
            assert!(next.started && next.warnings.is_empty(), "{case}: {next:?}");
        }
        // Hung while the lock is held: the write ends by the budget, and
        // the lock it held does not stay behind for the next request.
        let case = format!("compat returning={returning} write");
        let mut worker = Worker::start(&url, &[]);
        hung_write(&mut worker, &redis, visitor, budget, &case);
        let next = worker.request(Some(&sid));
        assert!(next.started && next.warnings.is_empty(), "{case}: {next:?}");
        assert_within(next.start(), budget, &format!("{case}: next start"), &next);
    }
    let stored: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
    assert!(stored.is_some(), "phpredis's key {key} is gone");
    let lock: bool = redis::cmd("EXISTS")
        .arg(format!("{key}_LOCK"))
        .query(&mut con)
        .expect("EXISTS");
    assert!(!lock, "a lock was left behind on {key}");
}

/// One user-index call per line on stdin (`bind`, `sessions`, `logout`),
/// one JSON result per line: what it returned or threw, and how long it
/// took. `bind` starts a session, binds it to user 7 and writes it.
const USERS: &str = r#"
while (($line = fgets(STDIN)) !== false) {
    $t = hrtime(true);
    try {
        switch (trim($line)) {
            case 'bind':
                session_id('');
                session_start();
                Stickless\bind_user(7);
                $_SESSION['n'] = 1;
                $out = session_write_close();
                break;
            case 'sessions': $out = count(Stickless\user_sessions(7)); break;
            case 'logout': $out = Stickless\logout_user(7); break;
        }
        $error = '';
    } catch (Throwable $e) {
        $out = null;
        $error = $e->getMessage();
    }
    echo json_encode(['out' => $out, 'error' => $error, 'ms' => intdiv(hrtime(true) - $t, 1000000)]), "\n";
}
"#;

#[test]
fn a_hung_redis_costs_each_user_index_call_at_most_budget_ms() {
    // user_sessions() and logout_user() run outside the session's own
    // steps, on the same budgeted link: a hung server must end them by the
    // budget with an exception that says why, and the next call must work.
    let redis = RedisServer::start();
    let budget = HUNG_BUDGET;
    let url = format!(
        "redis://127.0.0.1:{}/4?prefix=budget-users:&{HUNG_LIMITS}",
        redis.port()
    );
    let mut cmd = php_loop(&url, &[], USERS);
    cmd.stderr(Stdio::inherit());
    let mut worker = LineWorker::spawn(cmd);
    let mut ask = |call: &str| -> serde_json::Value {
        let line = worker.ask(call);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    for _ in 0..2 {
        assert_eq!(ask("bind")["out"], true);
    }
    assert_eq!(ask("sessions")["out"], 2);
    for call in ["sessions", "logout"] {
        redis.stop();
        let reply = ask(call);
        redis.cont();
        let spent = Duration::from_millis(reply["ms"].as_u64().expect("ms"));
        assert!(spent <= budget + SLACK, "{call} took {spent:?}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(" within "), "{call}: {reply}");
    }
    // Nothing was half done: both sessions are still listed, and a logout
    // now ends both.
    assert_eq!(ask("sessions")["out"], 2);
    assert_eq!(ask("logout")["out"], 2);
    assert_eq!(ask("sessions")["out"], 0);
}

#[test]
fn a_hung_redis_costs_a_returning_visitor_one_timeout_ms_not_two() {
    // Before: 2,052 ms with these settings (the report's), now one
    // timeout_ms: a hung standalone server is not asked twice.
    let redis = RedisServer::start();
    let url = format!(
        "redis://127.0.0.1:{}/0?prefix=budget:&timeout_ms=1000&budget_ms=1500",
        redis.port()
    );
    let sid = stored_session(&url);
    let mut worker = Worker::start(&url, &[]);
    assert!(worker.request(Some(&sid)).started);
    redis.stop();
    let reply = worker.request(Some(&sid));
    redis.cont();
    assert!(!reply.started, "{reply:?}");
    assert_within(
        reply.start(),
        Duration::from_millis(1000),
        "session_start",
        &reply,
    );
    assert!(
        reply
            .cause()
            .contains("no reply within timeout_ms (1000 ms)"),
        "{reply:?}"
    );
}

#[test]
fn a_dns_outage_costs_a_php_request_at_most_budget_ms() {
    // Before: redis-rs looked the name up with a blocking getaddrinfo
    // outside any budget, so every request waited out the resolver's
    // timeouts (10 s with this resolv.conf) and then failed.
    let redis = RedisServer::start();
    let net = FakeNet::new(&[]);
    let budget = Duration::from_millis(800);
    let url = format!(
        "redis://redis.budget.test:{}/0?prefix=dns:&budget_ms=800",
        redis.port()
    );
    let mut worker = Worker::start_in(&net, &url, &[]);
    for visitor in [None, Some("0123456789abcdef0123456789abcdef")] {
        for _ in 0..2 {
            let reply = worker.request(visitor);
            assert_within(reply.start(), budget, "session_start", &reply);
            assert_within(reply.write(), budget, "session_write_close", &reply);
            assert!(
                reply
                    .cause()
                    .contains("could not resolve `redis.budget.test` within budget_ms (800 ms)"),
                "{reply:?}"
            );
        }
    }
    // Four requests joined one lookup still under way: no thread per
    // request piles up while DNS is down.
    let threads = worker.threads();
    assert!(threads <= 3, "{threads} threads after 4 failed lookups");
}

#[test]
fn a_name_whose_first_address_black_holes_connects_to_the_next_within_budget_ms() {
    // Before: every address got the whole connect timeout, and redis-rs
    // counted the time spent on the first one against it, so the
    // black-holed first address ended the connect: the second address,
    // reachable all along, was never used.
    // 127.0.0.1 for the harness's own checks, 127.0.0.3 for the name.
    let redis = RedisServer::start_with(
        None,
        &["--bind", "127.0.0.1", "127.0.0.3"].map(String::from),
    );
    let _hole = BlackHole::on(SocketAddr::from(([127, 0, 0, 2], redis.port())));
    let net = FakeNet::new(&["127.0.0.2 multi.budget.test", "127.0.0.3 multi.budget.test"]);
    let budget = Duration::from_millis(1000);
    // connect_timeout_ms alone would let the first address eat the budget.
    let url = format!(
        "redis://multi.budget.test:{}/0?prefix=multi:&connect_timeout_ms=2000&budget_ms=1000",
        redis.port()
    );
    let mut worker = Worker::start_in(&net, &url, &[]);
    let reply = worker.request(None);
    assert!(reply.started && reply.warnings.is_empty(), "{reply:?}");
    let connecting = reply.start().max(reply.write());
    assert_within(connecting, budget, "the connecting step", &reply);
    // The black hole was tried first, for its half of the budget.
    assert!(
        connecting >= Duration::from_millis(400),
        "the black-holed address was not tried first: {reply:?}"
    );
    let again = worker.request(Some(&reply.id));
    assert_eq!(again.n, 2, "{again:?}");
}

#[test]
fn a_hung_tls_server_reached_by_name_costs_each_step_at_most_budget_ms() {
    // Before: a TLS connect by name resolved and connected inside redis-rs
    // outside any budget, and a hung server cost each step one timeout_ms
    // per reply of its pipeline.
    let ca = TestCa::generate();
    let (redis, tls_port) = tls_server(&ca, false);
    let budget = Duration::from_millis(700);
    let url = format!(
        "rediss://localhost:{tls_port}/0?prefix=tls:&tls_ca={}&timeout_ms=1000&budget_ms=700",
        ca.ca().display()
    );
    let mut kept = Worker::start(&url, &[]);
    let first = kept.request(None);
    // The certificate names `localhost`: verified against the name.
    assert!(first.started && first.warnings.is_empty(), "{first:?}");

    redis.stop();
    let hung = kept.request(Some(&first.id));
    let fresh = Worker::start(&url, &[]).request(Some(&first.id));
    redis.cont();
    for reply in [&hung, &fresh] {
        assert!(!reply.started, "{reply:?}");
        assert_within(reply.start(), budget, "session_start", reply);
        assert!(reply.cause().contains(" within "), "{reply:?}");
    }
    let next = kept.request(Some(&first.id));
    assert!(next.started && next.warnings.is_empty(), "{next:?}");
}

/// Where [`async_child`] reads its URLs from, one per line.
const AIO_URLS: &str = "STICKLESS_BUDGET_AIO_URLS";

#[test]
fn the_async_store_keeps_to_budget_ms_through_a_dns_outage_and_a_black_hole() {
    // Checked, not fixed: the async driver bounds each step with tokio
    // timeouts and redis-rs tries a name's addresses in parallel. This
    // keeps it so. Run in the same faked network as the PHP cases, by
    // re-running this test binary's `async_child` inside it.
    let redis = RedisServer::start_with(
        None,
        &["--bind", "127.0.0.1", "127.0.0.3"].map(String::from),
    );
    let _hole = BlackHole::on(SocketAddr::from(([127, 0, 0, 2], redis.port())));
    let net = FakeNet::new(&["127.0.0.2 multi.budget.test", "127.0.0.3 multi.budget.test"]);
    let port = redis.port();
    let urls = [
        format!("redis://redis.budget.test:{port}/0?prefix=aio:&budget_ms=800"),
        format!(
            "redis://multi.budget.test:{port}/0?prefix=aio:&connect_timeout_ms=2000&budget_ms=1000"
        ),
    ];
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "async_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(AIO_URLS, urls.join("\n"));
    let out = net.wrap(&child).output().expect("the child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<(u64, &str)> = stdout
        .lines()
        .filter_map(|l| l.split_once("AIO ").map(|(_, rest)| rest))
        .filter_map(|l| l.split_once(' '))
        .map(|(ms, what)| (ms.parse().expect("ms"), what))
        .collect();
    assert_eq!(
        results.len(),
        2,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (outage_ms, outage) = results[0];
    assert!(outage.starts_with("error"), "{outage}");
    assert!(
        Duration::from_millis(outage_ms) <= Duration::from_millis(800) + SLACK,
        "{outage_ms} ms: {outage}"
    );
    let (multi_ms, multi) = results[1];
    assert_eq!(multi, "ok", "{multi}");
    assert!(
        Duration::from_millis(multi_ms) <= Duration::from_millis(1000) + SLACK,
        "{multi_ms} ms"
    );
}

/// One `load` per URL in `STICKLESS_BUDGET_AIO_URLS`, each printed as
/// `AIO <ms> ok|error: ...`. Run by the test above, inside its namespace.
#[test]
#[ignore = "run inside a faked network by the_async_store_keeps_to_budget_ms_through_a_dns_outage_and_a_black_hole"]
fn async_child() {
    let urls = std::env::var(AIO_URLS).expect("run by its parent test");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let id = stickless::SessionId::parse("0123456789abcdef0123456789abcdef").expect("an id");
    for url in urls.lines() {
        let store = stickless::aio::Store::new(stickless::Config::parse(url).expect("a URL"));
        let started = std::time::Instant::now();
        let loaded = runtime.block_on(store.load(&id));
        let ms = started.elapsed().as_millis();
        match loaded {
            Ok(_) => println!("AIO {ms} ok"),
            Err(e) => println!("AIO {ms} error: {e}"),
        }
    }
    // The outage's getaddrinfo still runs on tokio's blocking pool, which
    // an ordinary drop would wait out (10 s).
    runtime.shutdown_background();
}
