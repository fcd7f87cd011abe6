//! Counts the commands each kind of request sends to Redis (MONITOR shows
//! every command a client sends; commands run inside our scripts show as
//! `lua` and are not round trips), and checks the session ID never shows.

use std::sync::mpsc;
use std::time::Duration;

use stickless_e2e::{RedisServer, monitor, new_session, php_session};

struct Monitor {
    lines: mpsc::Receiver<String>,
    marker: redis::Connection,
    next: u32,
    /// Session IDs in play: none may ever show in Redis.
    ids: Vec<String>,
}

impl Monitor {
    fn attach(redis: &RedisServer) -> Self {
        let mut monitor = Self {
            lines: monitor(redis.port()),
            marker: redis.client(),
            next: 0,
            ids: Vec::new(),
        };
        monitor.mark(); // returns once MONITOR is live
        monitor
    }

    /// Sends a marker and returns every line seen before it.
    fn mark(&mut self) -> Vec<String> {
        self.next += 1;
        let marker = format!("stickless-marker-{}", self.next);
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query(&mut self.marker)
            .expect("ECHO");
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("MONITOR shows the marker");
            if line.contains(&marker) {
                return seen;
            }
            seen.push(line);
        }
    }

    /// Runs one PHP request and returns the commands it sent (not lua's).
    /// Runs one request; returns the commands Redis saw from it and the
    /// round trips the worker counted (pipelined commands share one).
    fn request(&mut self, url: &str, ini: &[&str], code: &str) -> (Vec<String>, u64) {
        let code = format!(
            "{code} if (session_status() === PHP_SESSION_ACTIVE) session_write_close(); \
             echo stickless_stats()['round_trips'];"
        );
        let mut cmd = php_session(url, &code);
        for setting in ini {
            cmd.args(["-d", setting]);
        }
        let out = cmd.output().expect("php runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let round_trips = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the round-trip counter");
        let lines = self.mark();
        for line in &lines {
            for id in &self.ids {
                assert!(
                    !line.contains(id.as_str()),
                    "session ID reached Redis: {line}"
                );
            }
        }
        let commands = lines
            .into_iter()
            .filter(|l| !l.contains(" lua] ") && !l.contains("\"PING\""))
            .map(|l| {
                l.split_once("] ").map_or(l.clone(), |(_, cmd)| {
                    cmd.split(' ').next().unwrap_or("").to_owned()
                })
            })
            .collect();
        (commands, round_trips)
    }
}

/// What a request is, its extra ini settings, its PHP code, the commands
/// Redis must see from it, and its round trips.
type Case<'a> = (&'a str, &'a [&'a str], String, &'a [&'a str], u64);

/// A session as a first request creates it (strict mode is on by default).
fn session(mon: &mut Monitor, url: &str) -> String {
    let sid = new_session(url);
    mon.mark();
    mon.ids.push(sid.clone());
    sid
}

#[test]
fn each_request_kind_costs_its_documented_round_trips() {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0?prefix=rt:", redis.port());
    let mut mon = Monitor::attach(&redis);
    let start = |sid: &str| format!("session_id('{sid}'); session_start();");
    let read_and_close =
        |sid: &str| format!("session_id('{sid}'); session_start(['read_and_close' => true]);");
    let merge = |sid: &str| {
        format!("session_id('{sid}'); session_start(['stickless_concurrency' => 'merge']);")
    };

    // Warm-up: every script loaded once (EVALSHA, NOSCRIPT, SCRIPT LOAD).
    let sid = session(&mut mon, &url);
    for code in [
        format!("{} $_SESSION['n'] = 1;", start(&sid)),
        start(&sid),
        read_and_close(&sid),
        format!("{} $_SESSION['m'] = 1;", merge(&sid)),
        format!("{} session_destroy();", start(&sid)),
    ] {
        mon.request(&url, &[], &code);
    }
    // And the user index's scripts: bind, renew, list, drop, logout.
    let warm = session(&mut mon, &url);
    for code in [
        format!("{} Stickless\\bind_user('warm');", start(&warm)),
        start(&warm),
        format!("{} session_destroy();", start(&warm)),
        "Stickless\\user_sessions('warm'); Stickless\\logout_user('warm');".to_owned(),
    ] {
        mon.request(&url, &[], &code);
    }
    let bound = session(&mut mon, &url);

    let sid = session(&mut mon, &url);
    let sid2 = session(&mut mon, &url);
    let large = session(&mut mon, &url);
    // The lock is taken with a plain SET NX pipelined with the GET and the
    // PTTL of the data (one round trip, no script); the write is one script
    // (a session of 1 KB or more stages its envelope with a SET pipelined
    // with it); an unchanged request and a destroy end with one script.
    const LOCKED: &[&str] = &["\"SET\"", "\"GET\"", "\"PTTL\"", "\"EVALSHA\""];
    let cases: Vec<Case> = vec![
        (
            "new session, no cookie: locked like any other (its cookie may go out early)",
            &[],
            "session_start(); $_SESSION['a'] = 1;".to_owned(),
            LOCKED,
            2,
        ),
        (
            "new session, read_and_close: nothing to lock or store",
            &[],
            "session_start(['read_and_close' => true]);".to_owned(),
            &[],
            0,
        ),
        (
            "locked request with changed data (strict mode, the default, adds nothing)",
            &[],
            format!("{} $_SESSION['n']++;", start(&sid)),
            LOCKED,
            2,
        ),
        (
            "unchanged data (lazy_write): release (the lifetime is fresh: touch_interval_ms)",
            &[],
            start(&sid),
            LOCKED,
            2,
        ),
        (
            "changed data of 1 KB or more: its envelope staged, in the same round trip",
            &[],
            format!(
                "{} $_SESSION['big'] = str_repeat('x', 2048);",
                start(&large)
            ),
            &["\"SET\"", "\"GET\"", "\"PTTL\"", "\"SET\"", "\"EVALSHA\""],
            2,
        ),
        (
            "strict mode off: the same",
            &["stickless.strict_mode=0"],
            format!("{} $_SESSION['n']++;", start(&sid)),
            LOCKED,
            2,
        ),
        (
            "read_and_close: one GET, no lock",
            &[],
            read_and_close(&sid),
            &["\"GET\""],
            1,
        ),
        (
            "read_and_close with strict mode off: one GET",
            &["stickless.strict_mode=0"],
            read_and_close(&sid),
            &["\"GET\""],
            1,
        ),
        (
            "merge mode (per request), changed data: GETEX, then one compare-and-set",
            &[],
            format!("{} $_SESSION['n']++;", merge(&sid)),
            &["\"GETEX\"", "\"EVALSHA\""],
            2,
        ),
        (
            "merge mode (per request), unchanged data: the GETEX renews the lifetime, nothing else",
            &[],
            merge(&sid),
            &["\"GETEX\""],
            1,
        ),
        (
            "merge mode with serialize_handler=php_binary, which the codec does not read: the lock",
            &["session.serialize_handler=php_binary"],
            "session_start(['stickless_concurrency' => 'merge']); $_SESSION['a'] = 1;".to_owned(),
            LOCKED,
            2,
        ),
        (
            "merge mode for the site (stickless.concurrency), unchanged data",
            &["stickless.concurrency=merge"],
            start(&sid),
            &["\"GETEX\""],
            1,
        ),
        (
            "merge mode with lazy_write off, unchanged data: still one",
            &["stickless.concurrency=merge", "session.lazy_write=0"],
            start(&sid),
            &["\"GETEX\""],
            1,
        ),
        (
            "bind_user: one script in the user's slot; the binding is written at the end",
            &[],
            format!("{} Stickless\\bind_user('ann', 'laptop');", start(&bound)),
            &[
                "\"SET\"",
                "\"GET\"",
                "\"PTTL\"",
                "\"EVALSHA\"",
                "\"EVALSHA\"",
                "\"EVALSHA\"",
            ],
            4,
        ),
        (
            "bound session, changed data: + one to renew its index entry",
            &[],
            format!("{} $_SESSION['n'] = 2;", start(&bound)),
            &[
                "\"SET\"",
                "\"GET\"",
                "\"PTTL\"",
                "\"EVALSHA\"",
                "\"EVALSHA\"",
            ],
            3,
        ),
        (
            "bound session, unchanged data: touch, + one to renew its index entry",
            &[],
            start(&bound),
            &[
                "\"SET\"",
                "\"GET\"",
                "\"PTTL\"",
                "\"EVALSHA\"",
                "\"EVALSHA\"",
            ],
            3,
        ),
        (
            "user_sessions with one session: the index, then EXISTS per session",
            &[],
            "Stickless\\user_sessions('ann');".to_owned(),
            &["\"EVALSHA\"", "\"EXISTS\""],
            2,
        ),
        (
            "bound session destroyed: + one to drop its index entry",
            &[],
            format!("{} session_destroy();", start(&bound)),
            &[
                "\"SET\"",
                "\"GET\"",
                "\"PTTL\"",
                "\"EVALSHA\"",
                "\"EVALSHA\"",
            ],
            3,
        ),
        (
            "session_destroy costs one",
            &[],
            format!("{} session_destroy();", start(&sid)),
            LOCKED,
            2,
        ),
        (
            "merge mode, session_destroy: GETEX, then DESTROY (no lock to hand back)",
            &[],
            format!("{} session_destroy();", merge(&sid2)),
            &["\"GETEX\"", "\"EVALSHA\""],
            2,
        ),
    ];
    let mut report = Vec::new();
    for (what, ini, code, expected, round_trips) in cases {
        let (sent, counted) = mon.request(&url, ini, &code);
        report.push(format!(
            "{what}: {counted} round trips ({})",
            sent.join(" ")
        ));
        assert_eq!(sent, expected, "{what}");
        assert_eq!(counted, round_trips, "{what}");
    }
    println!("{}", report.join("\n"));
}
